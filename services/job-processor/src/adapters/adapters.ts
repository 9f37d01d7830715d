/** One adapter per protocol, so the worker picks by `JobTarget.service.protocol` and knows nothing else. */
import type { OutboundPolicy } from '@shared/outbound.ts';
import type { Protocol } from '@shared/schemas/registry.ts';
import { AdapterError, type ProtocolAdapter } from './adapter.ts';
import { createCloudgeneAdapter } from './cloudgene-adapter.ts';
import { createWesAdapter, type WesAdapterDeps } from './wes-adapter.ts';

export interface AdaptersDeps {
  fetch?: typeof fetch;
  /** Which hosts may be called (DESIGN §7: only loopback unless EXTERNAL_CALLS is on); every request and redirect is checked. */
  policy?: OutboundPolicy;
  /** How long an external server may stay silent before a call counts as a transient failure. */
  timeoutMs: number;
  userAgent?: string;
  /** The imputation workflow WES runs execute. */
  workflow: WesAdapterDeps['workflow'];
}

/** A fetch that refuses URLs the outbound policy does not allow, before any byte leaves the process. */
function policedFetch(policy: OutboundPolicy, inner: typeof fetch = fetch): typeof fetch {
  const guarded = async (input: Parameters<typeof fetch>[0], init?: Parameters<typeof fetch>[1]) => {
    const url = typeof input === 'string' ? input : input instanceof URL ? input.href : input.url;
    if (!policy.allows(url)) {
      let host = url;
      try {
        host = new URL(url).host;
      } catch {
        /* keep the raw text */
      }
      throw new AdapterError('rejected', `Calls to ${host} are switched off on this installation (EXTERNAL_CALLS).`, null, 'An operator must enable external calls, or the service must point at a local server.', 'external_calls_disabled');
    }
    return inner(input, init);
  };
  return Object.assign(guarded, { preconnect: inner.preconnect }) as typeof fetch;
}

/** Builds the Cloudgene and WES adapters sharing one transport, outbound policy and timeout. */
export function createAdapters(deps: AdaptersDeps): Record<Protocol, ProtocolAdapter> {
  const transport = deps.policy ? policedFetch(deps.policy, deps.fetch) : deps.fetch;
  return {
    cloudgene: createCloudgeneAdapter({ fetch: transport, timeoutMs: deps.timeoutMs, userAgent: deps.userAgent }),
    'ga4gh-wes': createWesAdapter({ fetch: transport, timeoutMs: deps.timeoutMs, workflow: deps.workflow }),
  };
}
