// The demo's and tests' OpenID Connect provider: the npm package oidc-provider (a certified OpenID
// provider) as a small server, provisioned with the demo staff in staff.json (login and password;
// claims for role, region, centres and agencies). Authorization-code flow with PKCE, refresh
// tokens, RP-initiated logout (end_session), discovery and JWKS. Access tokens are JWTs for the
// resource `OIDC_AUDIENCE` carrying the staff claims, so the services check them with the JWKS alone.
//
//   node server.js                 serve (settings below, from the environment)
//   node server.js hash PASSWORD   the `password` value staff.json keeps for PASSWORD
//
// OIDC_ISSUER        http://127.0.0.1:8400   the issuer URL (also where it listens)
// OIDC_AUDIENCE      urn:oss:api             the audience (resource indicator, an absolute URI) of its access tokens
// OIDC_STAFF_FILE    ./staff.json            the accounts
// OIDC_KEYS_FILE     ../../../var/oidc/signing-key.json   its private signing key, made on first start (mode 600)
// OIDC_REDIRECT_URIS (the demo's pages)      the web client's redirect and post-logout URIs, comma-separated
//                                            (the pages' sign-in callbacks, <page>auth/callback, and the pages)
// OIDC_ACCESS_TOKEN_TTL 900                  seconds an access token lives (refresh tokens: 8 hours)
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

import Provider from "oidc-provider";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const CLAIMS = ["role", "region", "centres", "agencies"];
const WEB_CLIENT = "oss-web";
const DEMO_PAGES = [
  "http://127.0.0.1:8103/desk/", "http://127.0.0.1:8104/desk/", "http://127.0.0.1:8105/desk/",
  "http://127.0.0.1:8300/dashboard/",
].flatMap((page) => [page, `${page}auth/callback`]);

function passwordHash(password, salt = crypto.randomBytes(16).toString("hex")) {
  return `scrypt:${salt}:${crypto.scryptSync(password, salt, 32).toString("hex")}`;
}

function passwordMatches(password, stored) {
  const [scheme, salt, digest] = String(stored || "").split(":");
  if (scheme !== "scrypt" || !salt || !digest) return false;
  const given = Buffer.from(passwordHash(password, salt).split(":")[2], "hex");
  const expected = Buffer.from(digest, "hex");
  return given.length === expected.length && crypto.timingSafeEqual(given, expected);
}

function loadStaff(file) {
  const staff = new Map();
  for (const person of JSON.parse(fs.readFileSync(file, "utf8")).staff) {
    staff.set(person.login, person);
  }
  return staff;
}

function signingKey(file) {
  if (fs.existsSync(file)) return JSON.parse(fs.readFileSync(file, "utf8"));
  const { privateKey } = crypto.generateKeyPairSync("ed25519");
  const jwk = { ...privateKey.export({ format: "jwk" }), alg: "EdDSA", use: "sig" };
  jwk.kid = crypto.createHash("sha256").update(jwk.x).digest("base64url").slice(0, 16);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, JSON.stringify(jwk), { mode: 0o600 });
  return jwk;
}

// The provider's sign-out page (RP-initiated logout): the form oidc-provider gives, in the pages' three languages.
async function logoutSource(ctx, form) {
  ctx.type = "html";
  ctx.body = `<!doctype html><html lang="uz"><head><meta charset="utf-8"><title>OSS — chiqish / выход / sign out</title>
<style>body{font-family:sans-serif;max-width:26rem;margin:4rem auto}button{padding:.5rem 1.2rem;margin:.3rem}</style></head><body>
<h1>OSS</h1><p>Chiqasizmi? · Выйти? · Sign out of OSS?</p>${form}
<button type="submit" form="op.logoutForm" value="yes" name="logout" id="sign-out" autofocus>Chiqish · Выйти · Sign out</button>
<button type="submit" form="op.logoutForm" id="stay">Qolish · Остаться · Stay signed in</button></body></html>`;
}

function escapeHtml(text) {
  return String(text).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
}

function loginPage(uid, problem) {
  return `<!doctype html><html lang="uz"><head><meta charset="utf-8"><title>OSS — kirish / вход / sign in</title>
<style>body{font-family:sans-serif;max-width:22rem;margin:4rem auto}label{display:block;margin:.8rem 0}
input{width:100%;padding:.4rem}button{padding:.5rem 1.2rem}.error{color:#a00}</style></head><body>
<h1>OSS</h1><p>Kirish · Вход · Sign in</p>
${problem ? `<p class="error" id="error">${escapeHtml(problem)}</p>` : ""}
<form method="post" action="/interaction/${escapeHtml(uid)}/login">
<label>Login <input name="login" id="login" autocomplete="username" required autofocus></label>
<label>Parol / Пароль / Password <input name="password" id="password" type="password" autocomplete="current-password" required></label>
<button type="submit" id="sign-in">Kirish</button></form></body></html>`;
}

async function readForm(req) {
  const chunks = [];
  let size = 0;
  for await (const chunk of req) {
    size += chunk.length;
    if (size > 8192) throw new Error("form too large");
    chunks.push(chunk);
  }
  return new URLSearchParams(Buffer.concat(chunks).toString("utf8"));
}

async function main() {
  if (process.argv[2] === "hash") {
    console.log(passwordHash(process.argv[3] || ""));
    return;
  }
  const issuer = process.env.OIDC_ISSUER || "http://127.0.0.1:8400";
  const audience = process.env.OIDC_AUDIENCE || "urn:oss:api";
  const staff = loadStaff(process.env.OIDC_STAFF_FILE || path.join(HERE, "staff.json"));
  const key = signingKey(process.env.OIDC_KEYS_FILE || path.join(HERE, "..", "..", "..", "var", "oidc", "signing-key.json"));
  const redirects = (process.env.OIDC_REDIRECT_URIS || DEMO_PAGES.join(",")).split(",").map((s) => s.trim()).filter(Boolean);
  const accessTtl = Number(process.env.OIDC_ACCESS_TOKEN_TTL || 900);

  const provider = new Provider(issuer, {
    clients: [{
      client_id: WEB_CLIENT,
      token_endpoint_auth_method: "none", // a public client: the pages hold no secret, PKCE protects the code
      grant_types: ["authorization_code", "refresh_token"],
      response_types: ["code"],
      redirect_uris: redirects,
      post_logout_redirect_uris: redirects,
      id_token_signed_response_alg: "EdDSA",
    }],
    jwks: { keys: [key] },
    enabledJWA: { idTokenSigningAlgValues: ["EdDSA"], requestObjectSigningAlgValues: ["EdDSA"] },
    pkce: { required: () => true },
    scopes: ["openid", "oss"],
    claims: { openid: ["sub"], profile: ["name"], oss: CLAIMS },
    findAccount: async (ctx, sub) => {
      const person = staff.get(sub);
      if (!person) return undefined;
      return { accountId: sub, claims: async () => ({ sub, name: person.name, ...pick(person) }) };
    },
    features: {
      devInteractions: { enabled: false },
      rpInitiatedLogout: { enabled: true, logoutSource },
      revocation: { enabled: true }, // the pages' backend revokes the refresh token when staff sign out
      resourceIndicators: {
        enabled: true,
        defaultResource: () => audience,
        useGrantedResource: () => true,
        getResourceServerInfo: (ctx, resource) => {
          if (resource !== audience) throw new Error(`unknown resource ${resource}`);
          return { scope: "openid oss", audience, accessTokenFormat: "jwt", accessTokenTTL: accessTtl,
                   jwt: { sign: { alg: "EdDSA" } } };
        },
      },
    },
    // The staff claims travel in the access token, which is what the services check.
    extraTokenClaims: async (ctx, token) => {
      const person = token.accountId ? staff.get(token.accountId) : undefined;
      return person ? pick(person) : undefined;
    },
    // Refresh tokens belong to the sign-in session (no offline_access): signing out ends them too.
    issueRefreshToken: async (ctx, client) => client.grantTypeAllowed("refresh_token"),
    ttl: { AccessToken: accessTtl, RefreshToken: 8 * 3600, Session: 8 * 3600, Grant: 8 * 3600, Interaction: 600,
           IdToken: accessTtl, AuthorizationCode: 60 },
    interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
    cookies: { keys: [crypto.createHash("sha256").update(JSON.stringify(key)).digest("hex")] },
    renderError: async (ctx, out) => {
      ctx.type = "html";
      ctx.body = `<!doctype html><meta charset="utf-8"><title>OSS</title><h1>${escapeHtml(out.error)}</h1><p>${escapeHtml(out.error_description || "")}</p>`;
    },
  });
  provider.proxy = false;
  const callback = provider.callback();

  async function interaction(req, res) {
    const match = /^\/interaction\/([\w-]+)(\/login)?$/.exec(new URL(req.url, issuer).pathname);
    if (!match) return false;
    const details = await provider.interactionDetails(req, res);
    if (details.prompt.name === "consent") {
      // The platform's own pages: what they may ask for is granted without a consent screen.
      const grant = details.grantId ? await provider.Grant.find(details.grantId)
        : new provider.Grant({ accountId: details.session.accountId, clientId: details.params.client_id });
      grant.addOIDCScope("openid oss");
      grant.addResourceScope(audience, "openid oss");
      await provider.interactionFinished(req, res, { consent: { grantId: await grant.save() } }, { mergeWithLastSubmission: true });
      return true;
    }
    if (req.method === "POST" && match[2]) {
      const form = await readForm(req);
      const person = staff.get(form.get("login") || "");
      if (!person || !passwordMatches(form.get("password") || "", person.password)) {
        res.writeHead(401, { "Content-Type": "text/html; charset=utf-8" });
        res.end(loginPage(match[1], "Login yoki parol noto‘g‘ri · Неверный логин или пароль · Wrong login or password"));
        return true;
      }
      await provider.interactionFinished(req, res, { login: { accountId: person.login } }, { mergeWithLastSubmission: false });
      return true;
    }
    res.writeHead(200, { "Content-Type": "text/html; charset=utf-8", "Cache-Control": "no-store" });
    res.end(loginPage(match[1]));
    return true;
  }

  const { port, hostname } = new URL(issuer);
  const http = await import("node:http");
  http.createServer(async (req, res) => {
    try {
      if (!(await interaction(req, res))) callback(req, res);
    } catch (error) {
      res.writeHead(400, { "Content-Type": "text/plain; charset=utf-8" });
      res.end(`sign-in failed: ${error.message}`);
    }
  }).listen(Number(port || 80), hostname === "localhost" ? "127.0.0.1" : hostname, () => {
    console.log(`OIDC provider ${issuer} (audience ${audience}, ${staff.size} staff accounts)`);
  });
}

function pick(person) {
  return Object.fromEntries(CLAIMS.filter((claim) => person[claim] !== undefined).map((claim) => [claim, person[claim]]));
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
