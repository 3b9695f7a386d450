// A real OpenID provider for the portal's single sign-on tests: the npm package
// oidc-provider on 127.0.0.1, with a tiny login page of its own (no dev interactions),
// accounts that carry a `groups` claim, and confidential clients for the portal.
//
// Started by tests/test_portal_sso.py:  node provider.mjs
//   REDIRECT_URIS  the portal's callback URLs, comma-separated (exact, as registered at an IdP)
//   CLIENT_SECRET  the secret of every client
//   GROUPS_IN      "id_token" (default: the groups claim is in the ID token, as Keycloak
//                  or Entra ID put it) or "userinfo" (only at the UserInfo endpoint, the
//                  OpenID Connect default for the code flow)
// It listens on a free port and prints one line of JSON, {"issuer": ...}, once it answers.
//
// The client "portal" gets the provider's ID tokens untouched. Each other client gets its
// ID token re-signed here, after the provider made it, with one thing wrong — what a
// mixed-up, late or hostile provider would send — so the tests can show the portal refuses
// each: a token for another audience, one already expired, one with another sign-in's
// nonce, one signed by a key that is not in the provider's JWKS.

import * as crypto from 'node:crypto';
import * as http from 'node:http';

import Provider from 'oidc-provider';

const redirectUris = (process.env.REDIRECT_URIS || '').split(',').filter(Boolean);
const secret = process.env.CLIENT_SECRET || 'portal-client-secret-for-tests-only';
const groupsInIdToken = (process.env.GROUPS_IN || 'id_token') === 'id_token';

const ACCOUNTS = {
  ada: { name: 'Ada Admin', groups: ['adm-staff', 'all-staff'] },
  cas: { name: 'Cas Arts', groups: ['cas-billing', 'all-staff'] },
  dean: { name: 'Dee Dean', groups: ['dean-office'] },
  finn: { name: 'Finn Finance', groups: ['it-finance', 'all-staff'] },
  nobody: { name: 'No Body', groups: ['all-staff', 'library-readers'] },
};
const passwordOf = (user) => `${user}-sso-password`;

const b64 = (data) => Buffer.from(data).toString('base64url');

function rsaKey(kid) {
  const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  return { kid, privateKey, jwk: { ...privateKey.export({ format: 'jwk' }), kid, use: 'sig', alg: 'RS256' } };
}
const signing = rsaKey('costloop-test-key');
// Same kid, another key: the portal finds the kid in the JWKS and the signature fails.
const forger = rsaKey('costloop-test-key');

function resign(idToken, change, key = signing) {
  const [header, payload] = idToken.split('.');
  const claims = change(JSON.parse(Buffer.from(payload, 'base64url').toString()));
  const head = JSON.parse(Buffer.from(header, 'base64url').toString());
  const data = `${b64(JSON.stringify(head))}.${b64(JSON.stringify(claims))}`;
  const signature = crypto.sign('sha256', Buffer.from(data), key.privateKey);
  return `${data}.${signature.toString('base64url')}`;
}

const TAMPER = {
  // azp names the portal, so only the portal's own aud check can catch it.
  'portal-wrong-audience': (t) => resign(t, (c) => ({ ...c, aud: 'another-app', azp: c.aud })),
  'portal-expired': (t) => resign(t, (c) => ({ ...c, iat: c.iat - 7200, exp: c.iat - 3600 })),
  'portal-wrong-nonce': (t) => resign(t, (c) => ({ ...c, nonce: 'the-nonce-of-another-sign-in' })),
  'portal-forged': (t) => resign(t, (c) => c, forger),
};

const clients = ['portal', ...Object.keys(TAMPER)].map((clientId) => ({
  client_id: clientId,
  client_secret: secret,
  redirect_uris: redirectUris,
  grant_types: ['authorization_code'],
  response_types: ['code'],
  token_endpoint_auth_method: 'client_secret_basic',
}));

const server = http.createServer();
server.listen(0, '127.0.0.1', () => {
  const issuer = `http://127.0.0.1:${server.address().port}`;
  const provider = new Provider(issuer, {
    clients,
    jwks: { keys: [signing.jwk] },
    cookies: { keys: [crypto.randomBytes(32).toString('hex')] },
    scopes: ['openid', 'profile', 'email', 'groups'],
    claims: {
      openid: ['sub'],
      profile: ['name', 'preferred_username'],
      email: ['email'],
      groups: ['groups'],
    },
    conformIdTokenClaims: !groupsInIdToken,
    pkce: { required: () => true }, // the portal must send a code challenge
    features: { devInteractions: { enabled: false } },
    interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
    async findAccount(ctx, id) {
      const account = ACCOUNTS[id];
      if (!account) return undefined;
      return {
        accountId: id,
        async claims() {
          return {
            sub: id,
            name: account.name,
            preferred_username: id,
            email: `${id}@example.edu`,
            groups: account.groups,
          };
        },
      };
    },
  });

  // After the provider answers the token request, swap in the tampered ID token.
  provider.use(async (ctx, next) => {
    await next();
    const tamper = TAMPER[ctx.oidc?.client?.clientId];
    if (ctx.path === '/token' && ctx.status === 200 && tamper && ctx.body?.id_token) {
      ctx.body = { ...ctx.body, id_token: tamper(ctx.body.id_token) };
    }
  });

  const callback = provider.callback();
  server.on('request', async (req, res) => {
    const match = /^\/interaction\/([^/?]+)(\/login)?$/.exec(req.url.split('?')[0]);
    if (!match) {
      callback(req, res);
      return;
    }
    try {
      await interaction(provider, req, res, match[2] === '/login');
    } catch (err) {
      res.writeHead(400, { 'content-type': 'text/plain' }).end(`interaction failed: ${err.message}`);
    }
  });
  process.stdout.write(`${JSON.stringify({ issuer })}\n`);
});

const escape = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

function loginPage(uid, clientId, error = '') {
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Campus sign-in</title></head>
<body><h1>Campus sign-in</h1><p>Signing in to ${escape(clientId)}</p>
${error ? `<p role="alert">${escape(error)}</p>` : ''}
<form method="post" action="/interaction/${escape(uid)}/login">
<label>User <input name="login" autocomplete="username"></label>
<label>Password <input name="password" type="password"></label>
<button type="submit">Campus sign in</button></form></body></html>`;
}

async function readForm(req) {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  return new URLSearchParams(Buffer.concat(chunks).toString());
}

// The interaction: a login form; a right password finishes both login and consent
// (the portal is a first-party client of the campus, as registered clients usually are).
async function interaction(provider, req, res, submitted) {
  const details = await provider.interactionDetails(req, res);
  const html = (status, body) => res.writeHead(status, { 'content-type': 'text/html; charset=utf-8' }).end(body);
  if (!submitted) {
    html(200, loginPage(details.uid, details.params.client_id));
    return;
  }
  const form = await readForm(req);
  const user = form.get('login') || '';
  if (!ACCOUNTS[user] || form.get('password') !== passwordOf(user)) {
    html(401, loginPage(details.uid, details.params.client_id, 'Wrong user or password.'));
    return;
  }
  const grant = new provider.Grant({ accountId: user, clientId: details.params.client_id });
  grant.addOIDCScope(details.params.scope);
  const grantId = await grant.save();
  await provider.interactionFinished(
    req,
    res,
    { login: { accountId: user }, consent: { grantId } },
    { mergeWithLastSubmission: false },
  );
}
