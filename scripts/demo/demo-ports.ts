/** Which loopback ports are taken, checked before the demo starts anything so it can say which variable to change. */

/** The ports of `ports` that cannot be listened on at 127.0.0.1 right now. */
export function busyPorts(ports: readonly number[]): number[] {
  const busy: number[] = [];
  for (const port of ports) {
    try {
      Bun.listen({ hostname: '127.0.0.1', port, socket: { data() {} } }).stop(true);
    } catch {
      busy.push(port);
    }
  }
  return busy;
}
