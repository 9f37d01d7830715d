/** What notifications say: each event type's title, body, link, and the email built from them. */
import { describe, expect, it } from 'bun:test';
import { outboxRow } from '@shared/outbox.ts';
import { render } from '../../services/notification/src/templates.ts';

const ada = { id: crypto.randomUUID(), email: 'ada@example.org', displayName: 'Ada <Lovelace>' };
const event = (type: string, data: Record<string, unknown>) => outboxRow({ type, source: 'test', userId: ada.id, data }).payload;

describe('render', () => {
  it('says a job completed and links to it, absolute in the email', () => {
    const jobId = crypto.randomUUID();
    const out = render(event('job.completed', { jobId, name: 'chr20', state: 'completed' }), ada, 'https://imputation.example.org/');
    expect(out.title).toBe('Job “chr20” completed');
    expect(out.link).toBe(`/jobs/${jobId}`);
    expect(out.subject).toBe('[Imputation] Job “chr20” completed');
    expect(out.text).toContain(`https://imputation.example.org/jobs/${jobId}`);
  });

  it('tells an expired credential from one that expires soon', () => {
    expect(render(event('credential.expiring', { serviceId: 'michigan', expiresAt: '2026-12-01', expired: false }), ada, 'https://x.org').title).toBe('Your token for michigan expires soon');
    expect(render(event('credential.expiring', { serviceId: 'michigan', expiresAt: '2026-11-01', expired: true }), ada, 'https://x.org').title).toBe('Your token for michigan has expired');
  });

  it('escapes what it puts into HTML', () => {
    const out = render(event('job.failed', { jobId: crypto.randomUUID(), name: '<script>x</script>', message: 'a & b' }), ada, 'https://x.org');
    expect(out.html).not.toContain('<script>');
    expect(out.html).toContain('&lt;script&gt;');
    expect(out.html).toContain('Ada &lt;Lovelace&gt;');
    expect(out.html).toContain('a &amp; b');
  });
});
