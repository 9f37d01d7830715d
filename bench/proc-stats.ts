/** Process and machine figures the benches read from /proc (Linux). */

/** Clock ticks per second of /proc's CPU counters (USER_HZ, 100 on Linux). */
export const CLK_TCK = 100;

/** A `kB` field of /proc/<pid>/status (VmRSS, VmHWM) in MiB; NaN once the process is gone. */
export async function statusMiB(pid: number | 'self', field: 'VmRSS' | 'VmHWM'): Promise<number> {
  try {
    const status = await Bun.file(`/proc/${pid}/status`).text();
    const kib = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1];
    return kib === undefined ? NaN : Number(kib) / 1024;
  } catch {
    return NaN;
  }
}

/** utime + stime of a process in clock ticks; NaN once it is gone. */
export async function cpuTicks(pid: number): Promise<number> {
  try {
    const stat = await Bun.file(`/proc/${pid}/stat`).text();
    // The command name (field 2) may hold spaces; the fields after its closing parenthesis do not.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(fields[11]) + Number(fields[12]);
  } catch {
    return NaN;
  }
}

/** The whole machine's busy and total CPU ticks (first line of /proc/stat), all cores summed. */
export async function machineTicks(): Promise<{ busy: number; total: number }> {
  const line = (await Bun.file('/proc/stat').text()).split('\n', 1)[0]!;
  const [user, nice, system, idle, iowait, irq, softirq, steal] = line.trim().split(/\s+/).slice(1).map(Number) as number[];
  const busy = user! + nice! + system! + irq! + softirq! + steal!;
  return { busy, total: busy + idle! + iowait! };
}

export const fixed = (x: number, digits = 0): string => (Number.isFinite(x) ? x.toFixed(digits) : 'n/a');

