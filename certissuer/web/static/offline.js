/* The verification page's only script. The page works without it.
 *
 * On every page: registers the service worker (sw.js), which keeps the offline page and the
 * lab's signed token keys for when the network is gone.
 *
 * On the offline page (served by the service worker for a QR code's address when the request
 * fails): reads the token from the address, checks its ECDSA P-256 (ES256) signature with
 * WebCrypto against the lab's keys (.well-known/certissuer/keys.json, whose own signature is
 * checked first), and the token's issue date against the key's validity window. It shows:
 *   - QR GENUINE, LEDGER NOT CONSULTED with the number, issue date and data digest the token
 *     carries, when the signature checks;
 *   - NOT GENUINE when it does not (altered, forged, an unknown key, outside the key's window);
 *   - CANNOT CHECK OFFLINE (never valid) for an Ed25519 token or keys that cannot be checked.
 * Token layout (certissuer/token.py): version (1) | key id (4) | days since 2000-01-01 (2) |
 * data digest prefix (16) | number (UTF-8) | signature (64, r||s), base32 upper case without
 * padding (older tokens: base64url), spelled canonically.
 */
(function () {
  'use strict';

  const script = document.currentScript;
  const root = new URL('../', script.src);
  if ('serviceWorker' in navigator) {
    navigator.serviceWorker.register(new URL('sw.js', root).href, { scope: root.href })
      .catch(() => {});
  }
  const shell = document.getElementById('offline-check');
  if (!shell) return;

  const B32 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  const B64URL = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
  const SIG = 64;
  const HEADER = 23;

  class Refused extends Error {}   // NOT GENUINE
  class Unchecked extends Error {} // CANNOT CHECK OFFLINE

  function decode(text, alphabet, width) {
    let acc = 0;
    let bits = 0;
    const out = [];
    for (const ch of text) {
      const value = alphabet.indexOf(ch);
      if (value < 0) return null;
      acc = (acc << width) | value;
      bits += width;
      if (bits >= 8) {
        bits -= 8;
        out.push((acc >> bits) & 0xff);
        acc &= (1 << bits) - 1;
      }
    }
    if (acc !== 0) return null; // unused bits set: not the canonical spelling
    return new Uint8Array(out);
  }

  function tokenBytes(token) {
    if (!token || token.length > 400) return null;
    if (/^A[E-H]/.test(token)) {
      if ([1, 3, 6].includes(token.length % 8)) return null;
      return decode(token, B32, 5);
    }
    if (token.length % 4 === 1) return null;
    return decode(token, B64URL, 6);
  }

  function b64url(text) {
    if (typeof text !== 'string' || text.length % 4 === 1) throw new Unchecked('bad base64url');
    const out = decode(text, B64URL, 6);
    if (out === null) throw new Unchecked('bad base64url');
    return out;
  }

  const hex = (bytes) => Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
  const utf8 = (bytes) => new TextDecoder('utf-8', { fatal: true }).decode(bytes);

  async function importKey(entry) {
    if (entry.alg === 'ES256' && entry.jwk && entry.jwk.kty === 'EC' && entry.jwk.crv === 'P-256') {
      const jwk = { kty: 'EC', crv: 'P-256', x: entry.jwk.x, y: entry.jwk.y, ext: true };
      const key = await crypto.subtle.importKey(
        'jwk', jwk, { name: 'ECDSA', namedCurve: 'P-256' }, true, ['verify']);
      return { key, params: { name: 'ECDSA', hash: 'SHA-256' } };
    }
    if (entry.alg === 'EdDSA' && entry.jwk && entry.jwk.kty === 'OKP' && entry.jwk.crv === 'Ed25519') {
      const jwk = { kty: 'OKP', crv: 'Ed25519', x: entry.jwk.x, ext: true };
      const key = await crypto.subtle.importKey('jwk', jwk, { name: 'Ed25519' }, true, ['verify']);
      return { key, params: { name: 'Ed25519' } };
    }
    throw new Unchecked('unsupported key');
  }

  async function keyId(key) {
    // The key id is the first 4 bytes of SHA-256 over the DER SubjectPublicKeyInfo.
    const spki = await crypto.subtle.exportKey('spki', key);
    return hex(new Uint8Array(await crypto.subtle.digest('SHA-256', spki)).slice(0, 4));
  }

  async function labKeys() {
    let doc;
    try {
      const response = await fetch(new URL('.well-known/certissuer/keys.json', root).href);
      doc = await response.json();
    } catch (e) {
      throw new Unchecked('the lab\'s keys were not kept on this device');
    }
    if (typeof doc.signed !== 'string' || doc.signed.split('.').length !== 3) {
      throw new Unchecked('the lab\'s keys are not signed');
    }
    const [head, payload, signature] = doc.signed.split('.');
    let header;
    let body;
    try {
      header = JSON.parse(utf8(b64url(head)));
      body = JSON.parse(utf8(b64url(payload)));
    } catch (e) {
      throw new Unchecked('the lab\'s keys are damaged');
    }
    const signer = (body.keys || []).find((k) => k.kid === header.kid && k.alg === header.alg);
    if (!signer) throw new Unchecked('the lab\'s keys are not signed by one of them');
    let imported;
    try {
      imported = await importKey(signer);
    } catch (e) {
      throw new Unchecked('this browser cannot check the signature of the lab\'s keys');
    }
    const ok = await crypto.subtle.verify(
      imported.params, imported.key, b64url(signature),
      new TextEncoder().encode(head + '.' + payload));
    if (!ok || (await keyId(imported.key)) !== signer.kid) {
      throw new Unchecked('the signature of the lab\'s keys does not verify');
    }
    return body;
  }

  function isoDay(days) {
    return new Date(Date.UTC(2000, 0, 1) + days * 86400000).toISOString().slice(0, 10);
  }

  async function check(token) {
    const raw = tokenBytes(token);
    if (raw === null) throw new Refused('the token is not spelled as the lab spells tokens');
    if (raw.length < HEADER + 1 + SIG) throw new Refused('the token is too short (truncated)');
    if (raw[0] !== 1) throw new Refused('unknown token version ' + raw[0]);
    const message = raw.slice(0, raw.length - SIG);
    const signature = raw.slice(raw.length - SIG);
    const kid = hex(raw.slice(1, 5));
    const issued = isoDay((raw[5] << 8) | raw[6]);
    const digest = hex(raw.slice(7, HEADER));
    const body = await labKeys();
    const entry = (body.keys || []).find((k) => k.kid === kid);
    if (!entry) {
      // A key the lab published after this device kept its keys is not a forgery: only a
      // token dated no later than that copy (or in the future) proves the key unknown.
      const kept = String(body.published || '').slice(0, 10);
      const today = new Date().toISOString().slice(0, 10);
      if (kept && issued > kept && issued <= today) {
        throw new Unchecked('the token was signed by key ' + kid + ', which the lab published ' +
          'after this device last kept its keys (' + kept + '): connect to check it');
      }
      throw new Refused('the token was signed by a key the lab does not publish (key id ' + kid + ')');
    }
    if (entry.alg !== 'ES256') {
      throw new Unchecked('the token was signed with an Ed25519 key (key id ' + kid + '): it is checked online only');
    }
    const { key, params } = await importKey(entry);
    if ((await keyId(key)) !== kid) throw new Unchecked('the lab\'s key ' + kid + ' is listed under a wrong id');
    if (!(await crypto.subtle.verify(params, key, signature, message))) {
      throw new Refused('the token\'s signature does not verify: it was altered or forged');
    }
    if ((entry.not_before && issued < entry.not_before) || (entry.not_after && issued > entry.not_after)) {
      throw new Refused('the token\'s issue date ' + issued + ' is outside the validity of key ' + kid);
    }
    let number;
    try {
      number = utf8(raw.slice(HEADER, raw.length - SIG));
    } catch (e) {
      throw new Refused('the token\'s certificate number is not valid UTF-8');
    }
    return { number, issued, digest, kid };
  }

  const STATES = {
    genuine: {
      verdict: 'ledger_not_consulted', tone: 'unknown', mark: '?',
      vi: 'MÃ QR DO PHÒNG THÍ NGHIỆM KÝ — CHƯA ĐỐI CHIẾU SỔ CẤP',
      en: 'QR GENUINE, LEDGER NOT CONSULTED',
      adviceVi: 'Không có mạng: chữ ký của mã QR đã được kiểm tra trên thiết bị này và đúng là của phòng thí nghiệm, nhưng chưa đối chiếu sổ cấp nên chưa biết giấy chứng nhận còn hiệu lực hay không. Hãy kiểm tra lại khi có mạng.',
      adviceEn: 'No network: the QR code\'s signature was checked on this device and is the lab\'s, but the ledger was not consulted, so whether the certificate is still in force is not known. Check again when online.',
    },
    forged: {
      verdict: 'altered', tone: 'bad', mark: '✗',
      vi: 'KHÔNG XÁC THỰC (bị sửa đổi hoặc giả mạo)',
      en: 'NOT GENUINE (altered or forged)',
      adviceVi: 'Đừng tin vào giấy chứng nhận này. Hãy liên hệ phòng thí nghiệm.',
      adviceEn: 'Do not rely on this certificate. Contact the lab.',
    },
    unchecked: {
      verdict: 'not_checked_offline', tone: 'unchecked', mark: '?',
      vi: 'KHÔNG KIỂM TRA ĐƯỢC KHI KHÔNG CÓ MẠNG',
      en: 'CANNOT CHECK OFFLINE',
      adviceVi: 'Mã QR này chỉ kiểm tra được khi có mạng. Hãy kiểm tra lại khi có mạng.',
      adviceEn: 'This QR code can only be checked online. Check again when online.',
    },
  };

  function setText(id, text) {
    document.getElementById(id).textContent = text;
  }

  function field(list, id, vi, en, value, mono) {
    const row = document.createElement('div');
    row.className = 'row';
    const dt = document.createElement('dt');
    dt.textContent = vi;
    const span = document.createElement('span');
    span.className = 'en';
    span.lang = 'en';
    span.textContent = en;
    dt.appendChild(span);
    const dd = document.createElement('dd');
    dd.id = id;
    if (mono) dd.className = 'mono';
    dd.textContent = value;
    row.append(dt, dd);
    list.appendChild(row);
  }

  function show(kind, reason, claims) {
    const state = STATES[kind];
    const section = document.getElementById('offline-verdict');
    section.className = 'verdict ' + state.tone;
    const title = document.getElementById('verdict-vi');
    title.dataset.verdict = state.verdict;
    title.textContent = state.vi;
    setText('verdict-en', state.en);
    setText('offline-mark', state.mark);
    setText('advice-vi', state.adviceVi);
    setText('advice-en', state.adviceEn);
    document.title = state.vi + ' · ' + state.en;
    const list = document.getElementById('offline-fields');
    list.replaceChildren();
    if (claims) {
      const [y, m, d] = claims.issued.split('-');
      field(list, 'f-token-number', 'Số giấy chứng nhận (theo mã QR)', 'Certificate No. (from the QR code)', claims.number);
      field(list, 'f-token-issued', 'Ngày cấp (theo mã QR)', 'Date of issue (from the QR code)', d + '/' + m + '/' + y);
      field(list, 'f-token-digest', 'Mã băm dữ liệu (theo mã QR)', 'Data digest (from the QR code)', claims.digest, true);
      field(list, 'f-token-kid', 'Khóa của phòng thí nghiệm', 'The lab\'s key', claims.kid, true);
    }
    setText('offline-reason', reason);
    shell.dataset.done = kind;
  }

  const match = /\/[Vv]\/([^/]+)$/.exec(location.pathname);
  if (!match) {
    show('unchecked', 'no QR token in this address');
    return;
  }
  let token;
  try {
    token = decodeURIComponent(match[1]);
  } catch (e) {
    show('unchecked', 'the address is not a QR code\'s address');
    return;
  }
  check(token).then(
    (claims) => show('genuine', 'QR token: genuine, signed by the lab key ' + claims.kid +
      '; checked on this device without network: whether the certificate is revoked, superseded or expired was not checked', claims),
    // Only a check that ran and failed is NOT GENUINE; anything else could not be checked.
    (error) => show(error instanceof Refused ? 'forged' : 'unchecked', 'QR token: ' + (error.message || error)),
  );
})();
