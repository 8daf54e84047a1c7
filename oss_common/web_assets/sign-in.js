// What every page that signs staff in does with its service's /<page>/auth/ endpoints
// (oss_common/web.py): ask who is signed in, the demo's token fallback, and signing out here and at
// the identity provider. The service keeps the tokens; the page never holds one. Served beside each
// such page's own files as sign-in.js.
"use strict";

window.OssSignIn = (function () {
  const PAGE_HEADER = { "X-OSS-Session": "1" };

  // The session's answer ({signed_in, provider, principal}); throws when the service cannot be reached.
  async function session() {
    const response = await fetch("auth/session", { headers: { "Accept": "application/json" }, cache: "no-store" });
    return response.json();
  }

  // The demo's fallback where no identity provider runs: the service checks the token and keeps it.
  // True when it was taken.
  async function withToken(value) {
    const response = await fetch("auth/token", {
      method: "POST", headers: Object.assign({ "Content-Type": "application/json" }, PAGE_HEADER),
      body: JSON.stringify({ token: value }) }).catch(() => null);
    if (response) await response.json().catch(() => null);  // read to the end, so nothing is left loading
    return Boolean(response && response.ok);
  }

  // Forget the session here; true when the browser goes on to the provider to end its session too
  // (it comes back to the page), false when the page should show itself signed out.
  async function signOut() {
    let endSession = null;
    try {
      const response = await fetch("auth/sign-out", { method: "POST", headers: PAGE_HEADER });
      endSession = (await response.json()).end_session_url;
    } catch (error) {
      endSession = null;
    }
    if (!endSession) return false;
    location.assign(endSession);
    return true;
  }

  return { PAGE_HEADER, session, withToken, signOut };
})();
