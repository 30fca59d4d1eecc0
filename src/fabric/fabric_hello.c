/* SPDX-License-Identifier: Apache-2.0 */
/* Connection data: the wire hello, accept and challenge, their HMACs, the cluster key. */
#include "fabric/fabric_internal.h"

#include <ctype.h>
#include <endian.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

_Static_assert(sizeof(struct pd_fabric_wire_hello) == 15 + PD_FABRIC_MAC_LEN, "hello wire format");
_Static_assert(offsetof(struct pd_fabric_wire_hello, version) == 4, "version at offset 4");
_Static_assert(sizeof(struct pd_fabric_wire_accept) == sizeof(struct pd_fabric_wire_hello),
               "accept and hello share one layout");
_Static_assert(sizeof(struct pd_fabric_wire_hello) <= PD_FABRIC_CM_DATA_PORTABLE &&
                   sizeof(struct pd_fabric_wire_challenge) <= PD_FABRIC_CM_DATA_PORTABLE,
               "connection data fits verbs");
_Static_assert(PD_FABRIC_NONCE_LEN <= PD_FABRIC_MAC_LEN, "Nc fits the hello's proof field");

static const char *primitive_name(unsigned primitive)
{
	return primitive == PD_FABRIC_ONE_SIDED   ? "one-sided"
	       : primitive == PD_FABRIC_TWO_SIDED ? "two-sided"
	                                          : "unknown";
}

/* Encode hello or accept data (same layout, different magic) into out. */
void pd_fabric_hello_encode(const struct pd_fabric *fab, const struct pd_fabric_hello *h,
                            uint32_t magic, uint8_t auth, const uint8_t *proof, size_t proof_len,
                            void *out)
{
	struct pd_fabric_wire_hello w = {
	    .magic = htole32(magic),
	    .version = htole16(h->version),
	    .peer_id = htole16(h->peer_id),
	    .tenant = htole16(h->tenant),
	    .credits = htole16(h->credits),
	    .primitive = htole16((uint16_t)fab->primitive),
	    .auth = auth,
	};
	if (proof != NULL)
		memcpy(w.proof, proof, proof_len);
	memcpy(out, &w, sizeof(w));
}

/* What an HMAC vouches for: the label keeps the three apart (docs/security.md). */
static const char server_challenge[] = "palladium v2 server challenge";
static const char client_proof[] = "palladium v2 client proof";
static const char server_accept[] = "palladium v2 server accept";
#define MAC_LABEL_MAX 32
_Static_assert(sizeof(server_challenge) <= MAC_LABEL_MAX && sizeof(client_proof) <= MAC_LABEL_MAX &&
                   sizeof(server_accept) <= MAC_LABEL_MAX,
               "MAC labels fit pd_fabric_mac's buffer");

static const char *mac_label(enum pd_fabric_mac_label label)
{
	switch (label) {
	case PD_FABRIC_MAC_SERVER_CHALLENGE: return server_challenge;
	case PD_FABRIC_MAC_CLIENT_PROOF: return client_proof;
	case PD_FABRIC_MAC_SERVER_ACCEPT: return server_accept;
	}
	PD_ASSERT(!"unknown MAC label");
	return NULL;
}

/*
 * HMAC-SHA256 under the cluster key of: label (with its NUL), Nc, Ns, the fields of the
 * hello or accept h (version, peer id, tenant, credits; little-endian), the sender's
 * primitive, and the id of the side it is meant for. 0 or -EIO.
 */
int pd_fabric_mac(const struct pd_fabric *fab, enum pd_fabric_mac_label which, const uint8_t *nc,
                  const uint8_t *ns, const struct pd_fabric_hello *h, uint16_t primitive,
                  uint16_t to_id, uint8_t out[PD_FABRIC_MAC_LEN])
{
	uint8_t msg[MAC_LABEL_MAX + 2 * PD_FABRIC_NONCE_LEN + 6 * sizeof(uint16_t)];
	uint16_t fields[6] = {htole16(h->version), htole16(h->peer_id), htole16(h->tenant),
	                      htole16(h->credits), htole16(primitive),  htole16(to_id)};
	const char *label = mac_label(which);
	size_t n = strlen(label) + 1;
	memcpy(msg, label, n);
	memcpy(msg + n, nc, PD_FABRIC_NONCE_LEN);
	n += PD_FABRIC_NONCE_LEN;
	memcpy(msg + n, ns, PD_FABRIC_NONCE_LEN);
	n += PD_FABRIC_NONCE_LEN;
	memcpy(msg + n, fields, sizeof(fields));
	n += sizeof(fields);
	unsigned int out_len = 0;
	if (HMAC(EVP_sha256(), fab->key, PD_FABRIC_KEY_LEN, msg, n, out, &out_len) == NULL ||
	    out_len != PD_FABRIC_MAC_LEN)
		return -EIO;
	return 0;
}

bool pd_fabric_mac_equal(const uint8_t *a, const uint8_t *b)
{
	return CRYPTO_memcmp(a, b, PD_FABRIC_MAC_LEN) == 0;
}

int pd_fabric_key_from_env(uint8_t key[PD_FABRIC_KEY_LEN])
{
	const char *hex = getenv(PD_FABRIC_KEY_ENV);
	if (hex == NULL || hex[0] == '\0')
		return 0;
	if (strlen(hex) != 2 * PD_FABRIC_KEY_LEN)
		return -EINVAL;
	for (size_t i = 0; i < PD_FABRIC_KEY_LEN; i++) {
		unsigned v;
		char byte[3] = {hex[2 * i], hex[2 * i + 1], '\0'};
		char *end;
		v = (unsigned)strtoul(byte, &end, 16);
		if (*end != '\0' || !isxdigit((unsigned char)byte[0]) ||
		    !isxdigit((unsigned char)byte[1]))
			return -EINVAL;
		key[i] = (uint8_t)v;
	}
	return 1;
}

/*
 * Parse connection data (hello or accept: same layout) sent to fab. 0, or -EPROTO /
 * -EACCES with reason set; fields that could be read are filled either way (for the
 * log). *auth and proof: what the peer sent, checked here only against fab being keyed.
 */
int pd_fabric_hello_parse(const struct pd_fabric *fab, const void *data, size_t len, uint32_t magic,
                          struct pd_fabric_hello *h, uint8_t *auth,
                          uint8_t proof[PD_FABRIC_MAC_LEN], char *reason, size_t reason_len)
{
	uint16_t version = fab->version;
	struct pd_fabric_wire_hello w;
	memset(h, 0, sizeof(*h));
	memset(&w, 0, sizeof(w));
	memcpy(&w, data, len < sizeof(w) ? len : sizeof(w));
	h->version = le16toh(w.version);
	h->peer_id = le16toh(w.peer_id);
	h->tenant = le16toh(w.tenant);
	h->credits = le16toh(w.credits);
	*auth = w.auth;
	memcpy(proof, w.proof, PD_FABRIC_MAC_LEN);
	if (len < offsetof(struct pd_fabric_wire_hello, peer_id) || le32toh(w.magic) != magic) {
		snprintf(reason, reason_len, "palladium: not a palladium peer");
		return -EPROTO;
	}
	if (h->version != version) {
		snprintf(reason, reason_len, "palladium: protocol version %u unsupported (want %u)",
		         h->version, version);
		return -EPROTO;
	}
	if (len < sizeof(w)) {
		snprintf(reason, reason_len, "palladium: short connection data (%zu bytes)", len);
		return -EPROTO;
	}
	unsigned primitive = le16toh(w.primitive);
	if (primitive != fab->primitive) {
		snprintf(reason, reason_len, "palladium: primitive %s, this side is %s",
		         primitive_name(primitive), primitive_name(fab->primitive));
		return -EPROTO;
	}
	if (h->credits < PD_FABRIC_CREDITS_MIN) {
		snprintf(reason, reason_len, "palladium: %u credits, need at least %u", h->credits,
		         PD_FABRIC_CREDITS_MIN);
		return -EPROTO;
	}
	if (w.auth > PD_FABRIC_AUTH_PROOF) {
		snprintf(reason, reason_len, "palladium: unknown authentication %u", w.auth);
		return -EPROTO;
	}
	if ((w.auth != PD_FABRIC_AUTH_NONE) != fab->keyed) {
		snprintf(reason, reason_len, "palladium: %s",
		         fab->keyed ? "no cluster key"
		                    : "unexpected cluster key (this side has none)");
		return -EACCES;
	}
	return 0;
}
