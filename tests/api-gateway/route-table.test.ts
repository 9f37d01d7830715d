import { describe, expect, it } from 'bun:test';
import { resolveRoute } from '../../services/api-gateway/src/route-table.ts';

describe('resolveRoute', () => {
  it.each([
    ['/api/auth/login', 'user-service', '/auth/login'],
    ['/api/users/me', 'user-service', '/users/me'],
    ['/api/admin/users', 'user-service', '/admin/users'],
    ['/api/services/abc', 'service-registry', '/services/abc'],
    ['/api/panels', 'service-registry', '/panels'],
    ['/api/ga4gh/service-info', 'service-registry', '/ga4gh/service-info'],
    ['/api/jobs/123', 'job-processor', '/jobs/123'],
    ['/api/files/f1/content', 'file-manager', '/files/f1/content'],
    ['/api/notifications/stream', 'notification', '/notifications/stream'],
    ['/api/webhooks/w1', 'notification', '/webhooks/w1'],
    ['/api/dashboard', 'monitoring', '/dashboard'],
    ['/api/dashboard/stats', 'monitoring', '/dashboard/stats'],
  ])('routes %s to %s at %s', (pathname, service, path) => {
    expect(resolveRoute(pathname)).toEqual({ service: service as never, path });
  });

  it('removes the /api/monitoring prefix entirely', () => {
    expect(resolveRoute('/api/monitoring/health/overall')).toEqual({ service: 'monitoring', path: '/health/overall' });
    expect(resolveRoute('/api/monitoring/alerts')).toEqual({ service: 'monitoring', path: '/alerts' });
    expect(resolveRoute('/api/monitoring')).toEqual({ service: 'monitoring', path: '/' });
    expect(resolveRoute('/api/monitoring/')).toEqual({ service: 'monitoring', path: '/' });
  });

  it.each([
    '/api/auth',
    '/api/users',
    '/api/admin',
    '/api/services',
    '/api/panels',
    '/api/ga4gh',
    '/api/jobs',
    '/api/files',
    '/api/notifications',
    '/api/webhooks',
    '/api/dashboard',
  ])('routes the bare prefix %s and its trailing-slash form to the same upstream path', (prefix) => {
    const bare = resolveRoute(prefix);
    expect(bare).not.toBeNull();
    expect(bare!.path).toBe(prefix.slice('/api'.length));
    expect(resolveRoute(prefix + '/')).toEqual(bare);
  });

  it('drops a trailing slash after a sub-path', () => {
    expect(resolveRoute('/api/jobs/1/')).toEqual({ service: 'job-processor', path: '/jobs/1' });
  });

  it('matches prefixes only on whole path segments', () => {
    expect(resolveRoute('/api/jobsx')).toBeNull();
    expect(resolveRoute('/api/jobs-archive/1')).toBeNull();
    expect(resolveRoute('/api/monitoringx/health')).toBeNull();
    expect(resolveRoute('/api/userservice')).toBeNull();
  });

  it('has no default route for unknown or non-/api paths', () => {
    expect(resolveRoute('/api/alerts')).toBeNull();
    expect(resolveRoute('/api/health/overall')).toBeNull();
    expect(resolveRoute('/api')).toBeNull();
    expect(resolveRoute('/api/')).toBeNull();
    expect(resolveRoute('/')).toBeNull();
    expect(resolveRoute('/jobs/1')).toBeNull();
    expect(resolveRoute('/apijobs')).toBeNull();
  });
});
