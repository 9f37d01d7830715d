/** What each event type says: the in-app title and body, and the email's subject, text and HTML. */
import type { EventEnvelope } from '@shared/schemas/events.ts';
import type { Recipient, Rendered } from './domain.ts';

const escapeHtml = (s: string) => s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
const str = (v: unknown, fallback = '') => (typeof v === 'string' && v.length > 0 ? v : fallback);

interface Message {
  title: string;
  body: string;
  link: string | null;
}

function message(event: EventEnvelope): Message {
  const d = event.data;
  const job = `“${str(d.name, 'your job')}”`;
  const jobLink = typeof d.jobId === 'string' ? `/jobs/${d.jobId}` : null;
  switch (event.type) {
    case 'job.completed':
      return d.state === 'partial'
        ? { title: `Job ${job} finished on some servers`, body: `${str(d.message, 'Some targets completed, others did not')}. Its results are in your files.`, link: jobLink }
        : { title: `Job ${job} completed`, body: 'Its results are in your files.', link: jobLink };
    case 'job.failed':
      return { title: `Job ${job} failed`, body: str(d.message, 'The job did not complete.') + (d.errorCode ? ` (${d.errorCode})` : ''), link: jobLink };
    case 'job.cancelled':
      return { title: `Job ${job} was cancelled`, body: str(d.message, 'The job was cancelled.'), link: jobLink };
    case 'job.created':
      return { title: `Job ${job} accepted`, body: 'It is queued for submission.', link: jobLink };
    case 'job.status_changed':
      return { title: `Job ${job} is ${str(d.state, 'updated')}`, body: str(d.message, `It moved from ${str(d.previous, '?')} to ${str(d.state, '?')}.`), link: jobLink };
    case 'credential.expiring': {
      const server = str(d.serviceName, str(d.serviceId, 'a server'));
      return d.expired === true
        ? { title: `Your token for ${server} has expired`, body: `It expired ${str(d.expiresAt, 'already')}. Store a new one in Settings so your jobs can run.`, link: '/settings/credentials' }
        : { title: `Your token for ${server} expires soon`, body: `It expires ${str(d.expiresAt, 'soon')}. Store a new one in Settings so your jobs keep running.`, link: '/settings/credentials' };
    }
    case 'service.health_changed':
      return {
        title: `${str(d.name, str(d.slug, 'A service'))} is ${str(d.current, 'changed')}`,
        body: `Was ${str(d.previous, '?')}.${d.error ? ` ${str(d.error)}` : ''}`,
        link: typeof d.serviceId === 'string' ? `/services/${d.serviceId}` : null,
      };
    case 'alert.raised':
      return { title: `Alert: ${str(d.title, str(d.rule, 'a rule fired'))}`, body: str(d.message, 'An alert was raised.'), link: '/monitoring/alerts' };
    case 'alert.resolved':
      return { title: `Resolved: ${str(d.title, str(d.rule, 'an alert'))}`, body: str(d.message, 'The condition cleared.'), link: '/monitoring/alerts' };
    default:
      return { title: event.type, body: `An event from ${event.source}.`, link: null };
  }
}

/** Renders `event` for `recipient`; `publicUrl` makes links absolute in emails. */
export function render(event: EventEnvelope, recipient: Recipient, publicUrl: string): Rendered {
  const { title, body, link } = message(event);
  const url = link ? `${publicUrl.replace(/\/+$/, '')}${link}` : null;
  const greeting = `Hello ${recipient.displayName},`;
  const footer = 'You receive this because of your notification preferences on the Federated Imputation Platform.';
  const text = [greeting, '', title, '', body, ...(url ? ['', url] : []), '', footer].join('\n');
  const html = [
    `<p>${escapeHtml(greeting)}</p>`,
    `<h2>${escapeHtml(title)}</h2>`,
    `<p>${escapeHtml(body)}</p>`,
    url ? `<p><a href="${escapeHtml(url)}">${escapeHtml(url)}</a></p>` : '',
    `<p style="color:#666;font-size:small">${escapeHtml(footer)}</p>`,
  ].join('\n');
  return { title, body, link, subject: `[Imputation] ${title}`, text, html };
}
