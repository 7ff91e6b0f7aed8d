// A real OpenID Connect provider for the test suite: the certified `oidc-provider` package from npm,
// configured like GrandLyon Connect (Authentic 2): issuer ending with a slash, /idp/oidc/... endpoints,
// HS256 ID tokens signed with the client secret by default, PKCE required, pairwise subjects,
// `<claim>_verified` marks for attributes certified through FranceConnect.
//
// Usage: node server.mjs CONFIG.json — listens on 127.0.0.1 on a free port (or config.port) and prints one
// JSON line {"issuer": ..., "port": ...} on stdout when ready. Login through its own development pages:
// any login (the account id) and any password, then a consent page.
import { createHash, generateKeyPairSync, randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import http from 'node:http';

import Provider from 'oidc-provider';

const config = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const accounts = config.accounts || {};

function privateJwk(type, options, alg) {
  const { privateKey } = generateKeyPairSync(type, options);
  return { ...privateKey.export({ format: 'jwk' }), kid: randomUUID(), use: 'sig', alg };
}

const server = http.createServer();
server.listen(config.port || 0, '127.0.0.1', () => {
  const { port } = server.address();
  const issuer = `http://127.0.0.1:${port}/`;
  const provider = new Provider(issuer, {
    clients: config.clients,
    jwks: {
      keys: [
        privateJwk('rsa', { modulusLength: 2048 }, 'RS256'),
        privateJwk('ec', { namedCurve: 'P-256' }, 'ES256'),
      ],
    },
    cookies: { keys: [randomUUID(), randomUUID()] },
    routes: {
      authorization: '/idp/oidc/authorize/',
      token: '/idp/oidc/token/',
      userinfo: '/idp/oidc/user_info/',
      jwks: '/idp/oidc/certs/',
      end_session: '/idp/oidc/logout/',
      revocation: '/idp/oidc/revoke/',
      introspection: '/idp/oidc/introspect/',
      registration: '/idp/oidc/register/',
      pushed_authorization_request: '/idp/oidc/par/',
      code_verification: '/idp/oidc/device/',
      device_authorization: '/idp/oidc/device/auth/',
      backchannel_authentication: '/idp/oidc/backchannel/',
      challenge: '/idp/oidc/challenge/',
    },
    pkce: { required: () => true },
    features: {
      devInteractions: { enabled: true },
      rpInitiatedLogout: { enabled: true },
      backchannelLogout: { enabled: true },
      jwtUserinfo: { enabled: true },
      claimsParameter: { enabled: false },
    },
    scopes: ['openid', 'profile', 'email'],
    claims: {
      openid: ['sub'],
      profile: ['given_name', 'family_name', 'given_name_verified', 'family_name_verified'],
      email: ['email', 'email_verified'],
    },
    subjectTypes: ['public', 'pairwise'],
    pairwiseIdentifier: async (ctx, accountId, client) => createHash('sha256')
      .update(`${client.sectorIdentifier}|${accountId}|sau-test-salt`).digest('hex'),
    enabledJWA: {
      idTokenSigningAlgValues: ['HS256', 'RS256', 'ES256'],
      userinfoSigningAlgValues: ['HS256', 'RS256', 'ES256'],
    },
    ttl: {
      AccessToken: 600, AuthorizationCode: 30, IdToken: 600, Interaction: 600, Session: 3600, Grant: 3600,
    },
    findAccount: async (ctx, id) => ({
      accountId: id,
      claims: async () => {
        const known = accounts[id] || {};
        return {
          sub: id,
          given_name: known.given_name ?? 'Invité',
          family_name: known.family_name ?? id,
          email: known.email ?? `${id}@example.org`,
          email_verified: known.email_verified ?? true,
          ...(known.certified ? { given_name_verified: true, family_name_verified: true } : {}),
        };
      },
    }),
  });
  provider.on('server_error', (ctx, err) => process.stderr.write(`server_error ${err.stack}\n`));
  server.on('request', provider.callback());
  process.stdout.write(`${JSON.stringify({ issuer, port })}\n`);
});

for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => server.close(() => process.exit(0)));
}
