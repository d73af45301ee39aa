// Sealing a provider key in the browser, in the format saferouter/byok/sealing.py opens:
// libsodium's sealed box (crypto_box_seal). An ephemeral X25519 key pair is made for this
// one message; the output is its public key (32 bytes) ‖ crypto_box(key, nonce, recipient,
// ephemeral secret), the nonce being BLAKE2b-192(ephemeral public ‖ recipient public).
// The ephemeral secret is wiped once used: nobody, this page included, can open the box
// afterwards; only the holder of the recipient's private key (the attested gateway) can.
// The parts are vendored, audited code (saferouter/web/vendor/README.md): nothing here is new crypto.
// What is sealed binds the key to its owner (sealing.Binding), four lines of ASCII:
// "saferouter-byok/v1", the hex SHA-256 of the SafeRouter key's secret, the provider id,
// the provider key — so nobody who copies the box can make it serve another key.
import "/vendor/tweetnacl/nacl-fast-min.js"; // a UMD script: as a module it sets globalThis.nacl
import { blake2b } from "/vendor/noble-hashes/blake2.js";

const nacl = globalThis.nacl;
export const PUBLIC_KEY_BYTES = 32;
export const PROVIDER_KEY_MAX_BYTES = 1024; // as sealing.PROVIDER_KEY_MAX_BYTES
export const PROVIDER_KEY_MIN_BYTES = 8; // as sealing.PROVIDER_KEY_MIN_BYTES
const NONCE_BYTES = 24;
const FINGERPRINT_HEX_CHARS = 12;
const PAYLOAD_TAG = "saferouter-byok/v1"; // as sealing.PAYLOAD_TAG

export class SealError extends Error {}

// The provider key goes into an `Authorization: Bearer` header: printable ASCII without
// spaces, 1 to PROVIDER_KEY_MAX_BYTES bytes (sealing.check_provider_key, refused here first
// so the user hears it before anything is sent).
export function checkProviderKey(providerKey) {
  if (!providerKey) throw new SealError("the provider key is empty");
  if (!/^[!-~]+$/.test(providerKey)) throw new SealError("the provider key holds a space, a control or a non-ASCII character");
  if (providerKey.length > PROVIDER_KEY_MAX_BYTES) throw new SealError(`the provider key is over ${PROVIDER_KEY_MAX_BYTES} bytes`);
  if (providerKey.length < PROVIDER_KEY_MIN_BYTES) throw new SealError(`the provider key is under ${PROVIDER_KEY_MIN_BYTES} characters`);
}

// The 32 bytes of a hex X25519 public key (as a quote's byok_public_key claim gives it).
export function publicKeyFromHex(text) {
  if (typeof text !== "string" || !/^[0-9a-f]{64}$/.test(text)) throw new SealError("the BYOK public key is not 64 lowercase hex digits");
  return Uint8Array.from(text.match(/../g), (h) => parseInt(h, 16));
}

// The sealed box of providerKey, bound to { owner, provider } (see ownerOf), to publicKey
// (32 bytes), as bytes.
export function seal(publicKey, providerKey, { owner, provider }) {
  checkProviderKey(providerKey);
  if (!(publicKey instanceof Uint8Array) || publicKey.length !== PUBLIC_KEY_BYTES) throw new SealError("the public key is not 32 bytes");
  if (typeof owner !== "string" || !/^[0-9a-f]{64}$/.test(owner)) throw new SealError("the owner is not the 64 hex digits of a key's SHA-256");
  if (typeof provider !== "string" || !/^[A-Za-z0-9_.-]{1,64}$/.test(provider)) throw new SealError("the provider id is not 1 to 64 of A-Z a-z 0-9 _ . -");
  const message = new TextEncoder().encode(`${PAYLOAD_TAG}\n${owner}\n${provider}\n${providerKey}`);
  const ephemeral = nacl.box.keyPair(); // from crypto.getRandomValues
  const nonce = blake2b(concat(ephemeral.publicKey, publicKey), { dkLen: NONCE_BYTES });
  const box = nacl.box(message, nonce, publicKey, ephemeral.secretKey);
  ephemeral.secretKey.fill(0);
  message.fill(0);
  return concat(ephemeral.publicKey, box);
}

// Standard base64, as PUT /v1/byok/{provider} takes "sealed_key".
export function base64(bytes) {
  return btoa(Array.from(bytes, (b) => String.fromCharCode(b)).join(""));
}

// The owner a sealed key is bound to: the hex SHA-256 of the SafeRouter key's secret
// (keys.hash_key), what the gateway compares with the secret each request presents.
export async function ownerOf(saferouterKey) {
  return sha256Hex(saferouterKey);
}

// sealing.fingerprint: the first 12 hex digits of the key's SHA-256, what the gateway and
// `saferouter byok add` show, so a user can tell which key a gateway holds.
export async function fingerprint(providerKey) {
  return (await sha256Hex(providerKey)).slice(0, FINGERPRINT_HEX_CHARS);
}

async function sha256Hex(text) {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text)));
  return Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
}

function concat(a, b) {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}
