import { describe, expect, it } from 'bun:test';
import { publicPathFor, resolveRoute, ROUTES, UPSTREAM_NAMES } from '../../services/api-gateway/src/route-table.ts';

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

describe('publicPathFor', () => {
  it.each([
    ['user-service', '/auth/login', '/api/auth/login'],
    ['user-service', '/users/me/api-tokens/{id}', '/api/users/me/api-tokens/{id}'],
    ['service-registry', '/ga4gh/registry/v1/services', '/api/ga4gh/registry/v1/services'],
    ['job-processor', '/jobs/{id}/cancel', '/api/jobs/{id}/cancel'],
    ['file-manager', '/files/{id}/content', '/api/files/{id}/content'],
    ['monitoring', '/health/overall', '/api/monitoring/health/overall'],
    ['monitoring', '/alerts', '/api/monitoring/alerts'],
    ['monitoring', '/', '/api/monitoring'],
    // Reachable both ways; the plain /api removal is the documented one.
    ['monitoring', '/dashboard/stats', '/api/dashboard/stats'],
  ])('maps %s %s to %s', (service, path, expected) => {
    expect(publicPathFor(service as never, path)).toBe(expected);
  });

  it('answers null for paths the gateway does not route to that service', () => {
    expect(publicPathFor('user-service', '/.well-known/jwks.json')).toBeNull();
    expect(publicPathFor('user-service', '/jobs')).toBeNull();
    expect(publicPathFor('job-processor', '/jobsx')).toBeNull();
    expect(publicPathFor('notification', '/internal/events')).toBeNull();
  });

  it('is the inverse of resolveRoute for every rule', () => {
    for (const rule of ROUTES) {
      const resolved = resolveRoute(`${rule.prefix}/x/{id}`)!;
      const back = publicPathFor(resolved.service, resolved.path)!;
      expect(resolveRoute(back)).toEqual(resolved);
    }
    expect(UPSTREAM_NAMES.every((name) => ROUTES.some((rule) => rule.service === name))).toBe(true);
  });
});
