/**
 * Whether a service may call a given external URL. Calls to real external servers (probes,
 * submissions) are switched on by configuration in compose/production and off for `npm start`, the
 * demo and tests (DESIGN §7); loopback targets (the local fakes) are always allowed.
 */
import { isIP } from 'node:net';

export interface OutboundPolicy {
  readonly externalCalls: boolean;
  /** True when `url` may be called under this policy. */
  allows(url: string): boolean;
}

/** True for `localhost`, 127.0.0.0/8 and ::1. */
export function isLoopbackHost(hostname: string): boolean {
  const host = hostname.replace(/^\[|\]$/g, '').toLowerCase();
  if (host === 'localhost' || host.endsWith('.localhost')) return true;
  if (isIP(host) === 4) return host.startsWith('127.');
  if (isIP(host) === 6) return host === '::1' || host === '0:0:0:0:0:0:0:1';
  return false;
}

export function outboundPolicy(externalCalls: boolean): OutboundPolicy {
  return {
    externalCalls,
    allows(url) {
      if (externalCalls) return true;
      try {
        return isLoopbackHost(new URL(url).hostname);
      } catch {
        return false;
      }
    },
  };
}
