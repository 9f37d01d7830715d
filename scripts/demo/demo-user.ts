/**
 * Sets up the demo user the way a researcher would, through the gateway: register (role researcher),
 * sign in, and store a token for each fake server in the vault.
 */
import type { DemoApi } from './demo-api.ts';
import { DEMO_SERVICES, DEMO_USER } from './demo-settings.ts';

/** Registers `demo`, signs in and stores both server tokens; answers the session's access token. */
export async function setUpDemoUser(api: DemoApi, tokens: { cloudgene: string; wes: string }): Promise<string> {
  await api.call('register the demo user', 'POST', '/api/auth/register', {
    json: { username: DEMO_USER.username, email: DEMO_USER.email, password: DEMO_USER.password, firstName: DEMO_USER.firstName, lastName: DEMO_USER.lastName },
    expect: [201],
  });
  const session = await api.json('sign in as the demo user', 'POST', '/api/auth/login', { json: { login: DEMO_USER.username, password: DEMO_USER.password } });
  const token = session.accessToken as string;
  await api.call('store the Cloudgene token', 'PUT', `/api/users/me/credentials/${DEMO_SERVICES.cloudgene}`, {
    token,
    json: { type: 'cloudgene-token', token: tokens.cloudgene, label: 'demo Cloudgene API token' },
  });
  await api.call('store the WES token', 'PUT', `/api/users/me/credentials/${DEMO_SERVICES.wes}`, {
    token,
    json: { type: 'wes-bearer', token: tokens.wes, label: 'demo WES bearer token' },
  });
  return token;
}
