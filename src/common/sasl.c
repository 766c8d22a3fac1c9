/* sasl.c - server side of SASL: PLAIN (RFC 4616), LOGIN, SCRAM-SHA-256 (RFC 5802, 7677)
 *
 * A struct sasl_server is a small state machine per exchange. Each step decodes the
 * client's base64 response into a buffer of SASL_MAX_RESPONSE bytes, parses it for the
 * current state, and either asks for more (CONTINUE with a base64 challenge) or ends
 * (OK, FAIL, TEMPFAIL, MALFORMED); after an end every further step is MALFORMED.
 *
 * Conversations:
 *   PLAIN   [initial response] -> "" challenge -> authzid NUL authcid NUL passwd -> end
 *   LOGIN   "Username:" -> user -> "Password:" -> password -> end (an initial response
 *           is the user name)
 *   SCRAM   "" challenge (no initial response) -> client-first -> server-first ->
 *           client-final -> server-final "v=..." (CONTINUE) -> empty response -> OK
 * User names are lower-cased (ASCII) before the lookup; a name with a control character
 * is MALFORMED, so that what sasl_server_user() returns is safe to log.
 *
 * SECURITY: everything parsed here is client input, bounded by SASL_MAX_RESPONSE before
 * it is decoded. An unknown user costs the same work as a wrong password: PLAIN and LOGIN
 * run password_dummy_verify(), SCRAM answers with password_fake_secret() (with the
 * iteration count of the last real account seen) and fails at the proof, so both end in
 * the same SASL_STATUS_FAIL. SCRAM channel binding "p=" is refused
 * (we do not offer SCRAM-SHA-256-PLUS) and so is the mandatory extension "m=". Decoded
 * responses, looked-up hashes and SCRAM keys are wiped with OPENSSL_cleanse.
 */
#include "sasl.h"

#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include "base64.h"
#include "password.h"
#include "xalloc.h"

#define SCRAM_KEY_LEN            32  /* SHA-256 output */
#define SCRAM_SERVER_NONCE_BYTES 18  /* random bytes in the server's part of the nonce */
#define SCRAM_MAX_CLIENT_NONCE   512 /* longest client nonce accepted */
#define SCRAM_MAX_AUTH_MESSAGE   (3 * SASL_MAX_RESPONSE)
#define SCRAM_SERVER_FINAL_MAX   64 /* "v=" and 44 characters of base64 */
#define TEST_NONCE_MAX           64

/* The longest base64 text that can decode to SASL_MAX_RESPONSE bytes. */
#define MAX_RESPONSE_TEXT ((SASL_MAX_RESPONSE + 2) / 3 * 4)

enum state {
    ST_START,       /* nothing received yet */
    ST_PLAIN,       /* waiting for the PLAIN message */
    ST_LOGIN_USER,  /* sent "Username:" */
    ST_LOGIN_PASS,  /* sent "Password:" */
    ST_SCRAM_FIRST, /* waiting for client-first-message */
    ST_SCRAM_FINAL, /* sent server-first-message, waiting for client-final-message */
    ST_SCRAM_ACK,   /* sent server-final-message, waiting for an empty response */
    ST_DONE         /* a final status was returned */
};

struct sasl_server {
    enum sasl_mech mech;
    sasl_lookup_fn *lookup;
    void *ctx;
    enum state state;
    char *user; /* lower-cased; NULL until the client names one */

    /* SCRAM-SHA-256 */
    struct scram_secret secret;
    bool fake;                /* unknown user or unusable stored form: fail at the proof */
    char *gs2_header;         /* as received, e.g. "n,," */
    char *nonce;              /* client nonce + server nonce */
    struct sbuf auth_message; /* client-first-bare "," server-first "," client-final-no-proof */
};

static char test_nonce[TEST_NONCE_MAX + 1];
/* The iteration count offered to unknown users: the last one seen in a real account, so
 * that "i=" does not tell them apart when the store uses a non-default count. */
static atomic_uint fake_iterations = PASSWORD_DEFAULT_ITERATIONS;

void sasl_set_fake_iterations(unsigned iterations)
{
    atomic_store_explicit(&fake_iterations, iterations, memory_order_relaxed);
}

static const struct {
    enum sasl_mech mech;
    const char *name;
} mechs[] = {
    {SASL_MECH_PLAIN, "PLAIN"},
    {SASL_MECH_LOGIN, "LOGIN"},
    {SASL_MECH_SCRAM_SHA_256, "SCRAM-SHA-256"},
};

int sasl_mech_parse(const char *name, enum sasl_mech *mech_r)
{
    for (size_t i = 0; i < sizeof(mechs) / sizeof(mechs[0]); i++) {
        if (strcasecmp(name, mechs[i].name) == 0) {
            *mech_r = mechs[i].mech;
            return 0;
        }
    }
    return -1;
}

const char *sasl_mech_name(enum sasl_mech mech)
{
    for (size_t i = 0; i < sizeof(mechs) / sizeof(mechs[0]); i++) {
        if (mechs[i].mech == mech) return mechs[i].name;
    }
    return "UNKNOWN";
}

const char *sasl_mech_list(void)
{
    return "PLAIN LOGIN SCRAM-SHA-256";
}

void sasl_test_set_nonce(const char *server_nonce)
{
    test_nonce[0] = '\0';
    if (server_nonce == NULL) return;
    size_t len = strnlen(server_nonce, TEST_NONCE_MAX);
    memcpy(test_nonce, server_nonce, len);
    test_nonce[len] = '\0';
}

struct sasl_server *sasl_server_new(enum sasl_mech mech, sasl_lookup_fn *lookup, void *ctx)
{
    struct sasl_server *sasl = xcalloc(1, sizeof(*sasl));
    sasl->mech = mech;
    sasl->lookup = lookup;
    sasl->ctx = ctx;
    sasl->state = ST_START;
    sbuf_init(&sasl->auth_message, SCRAM_MAX_AUTH_MESSAGE);
    return sasl;
}

static void wipe_sbuf(struct sbuf *sb)
{
    if (sb->data) OPENSSL_cleanse(sb->data, sb->cap);
    sbuf_free(sb);
}

static void wipe_str(char **s)
{
    if (*s) OPENSSL_cleanse(*s, strlen(*s));
    xfree(*s);
}

/* Forgets everything but the user name. */
static void wipe_exchange(struct sasl_server *sasl)
{
    OPENSSL_cleanse(&sasl->secret, sizeof(sasl->secret));
    wipe_str(&sasl->gs2_header);
    wipe_str(&sasl->nonce);
    wipe_sbuf(&sasl->auth_message);
}

void sasl_server_free(struct sasl_server **sasl)
{
    if (*sasl == NULL) return;
    wipe_exchange(*sasl);
    xfree((*sasl)->user);
    free(*sasl);
    *sasl = NULL;
}

const char *sasl_server_user(const struct sasl_server *sasl)
{
    return sasl->user;
}

/* Sets the user from name[0..len): non-empty, no NUL or other control character. */
static int set_user(struct sasl_server *sasl, const char *name, size_t len)
{
    if (len == 0) return -1;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)name[i];
        if (c < 0x20 || c == 0x7f) return -1;
    }
    char *user = xstrndup(name, len);
    for (char *p = user; *p; p++) {
        if (*p >= 'A' && *p <= 'Z') *p = (char)(*p - 'A' + 'a');
    }
    xfree(sasl->user);
    sasl->user = user;
    return 0;
}

static int encode_challenge(const void *data, size_t len, struct sbuf *challenge_r)
{
    sbuf_reset(challenge_r);
    return base64_encode(data, len, challenge_r);
}

/* PLAIN and LOGIN: look the user up and check the password. */
static enum sasl_status check_password(struct sasl_server *sasl, const char *password,
                                       size_t password_len)
{
    char *hash = NULL;
    int found = sasl->lookup(sasl->ctx, sasl->user, &hash);

    if (found < 0) {
        wipe_str(&hash);
        return SASL_STATUS_TEMPFAIL;
    }
    int ok = 0;
    if (found == 0 || hash == NULL) {
        password_dummy_verify(password, password_len);
    } else {
        ok = password_verify(password, password_len, hash);
        if (ok < 0) password_dummy_verify(password, password_len); /* unusable stored form */
    }
    wipe_str(&hash);
    return ok == 1 ? SASL_STATUS_OK : SASL_STATUS_FAIL;
}

/* RFC 4616: message = [authzid] NUL authcid NUL passwd */
static enum sasl_status plain_step(struct sasl_server *sasl, const char *msg, size_t len)
{
    const char *nul1 = memchr(msg, '\0', len);
    if (nul1 == NULL) return SASL_STATUS_MALFORMED;
    const char *authcid = nul1 + 1;
    const char *nul2 = memchr(authcid, '\0', len - (size_t)(authcid - msg));
    if (nul2 == NULL) return SASL_STATUS_MALFORMED;
    const char *passwd = nul2 + 1;
    size_t passwd_len = len - (size_t)(passwd - msg);
    if (passwd_len == 0 || memchr(passwd, '\0', passwd_len) != NULL) return SASL_STATUS_MALFORMED;
    size_t authzid_len = (size_t)(nul1 - msg);
    if (set_user(sasl, authcid, (size_t)(nul2 - authcid)) < 0) return SASL_STATUS_MALFORMED;

    if (authzid_len > 0) {
        /* we only let a user act as itself */
        if (authzid_len != strlen(sasl->user) || strncasecmp(msg, sasl->user, authzid_len) != 0)
            return SASL_STATUS_FAIL;
    }
    return check_password(sasl, passwd, passwd_len);
}

static enum sasl_status login_step(struct sasl_server *sasl, const char *msg, size_t len,
                                   struct sbuf *challenge_r)
{
    static const char prompt[] = "Password:";

    if (sasl->state == ST_LOGIN_USER) {
        if (set_user(sasl, msg, len) < 0) return SASL_STATUS_MALFORMED;
        if (encode_challenge(prompt, strlen(prompt), challenge_r) < 0) return SASL_STATUS_TEMPFAIL;
        sasl->state = ST_LOGIN_PASS;
        return SASL_STATUS_CONTINUE;
    }
    return check_password(sasl, msg, len);
}

/* Decodes a SCRAM saslname (",", "=" escaped as "=2C", "=3D") from s[0..len). */
static char *scram_decode_name(const char *s, size_t len)
{
    struct sbuf out = SBUF_INIT(SASL_MAX_RESPONSE);
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (c == '=') {
            if (len - i < 3) goto bad;
            if (s[i + 1] == '2' && s[i + 2] == 'C')
                c = ',';
            else if (s[i + 1] == '3' && s[i + 2] == 'D')
                c = '=';
            else
                goto bad;
            i += 2;
        } else if (c == ',') {
            goto bad;
        }
        if (sbuf_putc(&out, c) < 0) goto bad;
    }
    if (out.len == 0) goto bad;
    return sbuf_steal(&out);
bad:
    sbuf_free(&out);
    return NULL;
}

/* printable = %x21-2B / %x2D-7E */
static bool scram_printable(const char *s, size_t len)
{
    if (len == 0) return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x21 || c > 0x7e || c == ',') return false;
    }
    return true;
}

/* extensions = attr-val *("," attr-val), attr-val = ALPHA "=" value: checks s, which
 * starts right after a ','. We support none and ignore them, as RFC 5802 asks. */
static bool scram_extensions_ok(const char *s)
{
    for (;;) {
        const char *end = strchrnul(s, ',');
        if (end - s < 3) return false; /* "x=" and at least one value character */
        if (!((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z')) || s[1] != '=')
            return false;
        if (*end == '\0') return true;
        s = end + 1;
    }
}

static int scram_server_nonce(struct sbuf *out)
{
    if (test_nonce[0] != '\0') return sbuf_appends(out, test_nonce);
    unsigned char rnd[SCRAM_SERVER_NONCE_BYTES];
    if (RAND_bytes(rnd, sizeof(rnd)) != 1) return -1;
    return base64_encode(rnd, sizeof(rnd), out);
}

/* client-first-message = gs2-header client-first-message-bare
 * gs2-header = gs2-cbind-flag "," [ "a=" saslname ] ","
 * client-first-message-bare = [reserved-mext ","] "n=" saslname "," "r=" c-nonce
 *                             ["," extensions] */
static enum sasl_status scram_first(struct sasl_server *sasl, const char *msg,
                                    struct sbuf *challenge_r)
{
    const char *p = msg, *end;
    char *authzid = NULL, *name = NULL;
    enum sasl_status status = SASL_STATUS_MALFORMED;

    /* gs2-cbind-flag: "n" (client cannot bind), "y" (client could, thinks we cannot);
     * "p=" asks for SCRAM-SHA-256-PLUS, which we do not offer */
    if (*p != 'n' && *p != 'y') goto out;
    p++;
    if (*p++ != ',') goto out;
    if (p[0] == 'a' && p[1] == '=') {
        p += 2;
        end = strchr(p, ',');
        if (end == NULL) goto out;
        authzid = scram_decode_name(p, (size_t)(end - p));
        if (authzid == NULL) goto out;
        p = end;
    }
    if (*p++ != ',') goto out;
    sasl->gs2_header = xstrndup(msg, (size_t)(p - msg));

    const char *bare = p;
    if (p[0] != 'n' || p[1] != '=') goto out; /* includes a refused "m=" */
    p += 2;
    end = strchr(p, ',');
    if (end == NULL) goto out;
    name = scram_decode_name(p, (size_t)(end - p));
    if (name == NULL || set_user(sasl, name, strlen(name)) < 0) goto out;
    p = end + 1;
    if (p[0] != 'r' || p[1] != '=') goto out;
    p += 2;
    end = strchrnul(p, ',');
    size_t cnonce_len = (size_t)(end - p);
    if (cnonce_len > SCRAM_MAX_CLIENT_NONCE || !scram_printable(p, cnonce_len)) goto out;
    if (*end == ',' && !scram_extensions_ok(end + 1)) goto out;

    if (authzid != NULL) {
        if (strcasecmp(authzid, sasl->user) != 0) {
            status = SASL_STATUS_FAIL;
            goto out;
        }
    }

    char *hash = NULL;
    int found = sasl->lookup(sasl->ctx, sasl->user, &hash);
    if (found < 0) {
        wipe_str(&hash);
        status = SASL_STATUS_TEMPFAIL;
        goto out;
    }
    sasl->fake = found == 0 || hash == NULL || password_scram_secret(hash, &sasl->secret) < 0;
    wipe_str(&hash);
    if (sasl->fake) {
        unsigned iterations = atomic_load_explicit(&fake_iterations, memory_order_relaxed);
        password_fake_secret(sasl->user, iterations, &sasl->secret);
    }

    struct sbuf nonce = SBUF_INIT(SCRAM_MAX_CLIENT_NONCE + 2 * TEST_NONCE_MAX);
    if (sbuf_append(&nonce, p, cnonce_len) < 0 || scram_server_nonce(&nonce) < 0) {
        sbuf_free(&nonce);
        status = SASL_STATUS_TEMPFAIL;
        goto out;
    }
    sasl->nonce = sbuf_steal(&nonce);

    /* server-first-message = "r=" nonce ",s=" salt ",i=" iteration-count */
    struct sbuf *am = &sasl->auth_message;
    if (sbuf_append(am, bare, strlen(bare)) < 0 || sbuf_putc(am, ',') < 0) goto out;
    size_t server_first_at = am->len;
    if (sbuf_printf(am, "r=%s,s=", sasl->nonce) < 0 ||
        base64_encode(sasl->secret.salt, sasl->secret.salt_len, am) < 0 ||
        sbuf_printf(am, ",i=%u", sasl->secret.iterations) < 0 ||
        encode_challenge(am->data + server_first_at, am->len - server_first_at, challenge_r) < 0 ||
        sbuf_putc(am, ',') < 0) {
        status = SASL_STATUS_TEMPFAIL;
        goto out;
    }
    sasl->state = ST_SCRAM_FINAL;
    status = SASL_STATUS_CONTINUE;
out:
    free(authzid);
    free(name);
    return status;
}

/* client-final-message = "c=" base64(gs2-header) ",r=" nonce ["," extensions] ",p=" proof */
static enum sasl_status scram_final(struct sasl_server *sasl, const char *msg,
                                    struct sbuf *challenge_r)
{
    struct sbuf cbind = SBUF_INIT(0), proof = SBUF_INIT(SCRAM_KEY_LEN);
    unsigned char client_sig[SCRAM_KEY_LEN], client_key[SCRAM_KEY_LEN], stored_key[SCRAM_KEY_LEN],
        server_sig[SCRAM_KEY_LEN];
    enum sasl_status status = SASL_STATUS_MALFORMED;
    const char *p, *end;

    /* the proof is the last attribute; base64 has no ',' */
    const char *proof_at = strrchr(msg, ',');
    if (proof_at == NULL || strncmp(proof_at, ",p=", 3) != 0) goto out;
    size_t without_proof_len = (size_t)(proof_at - msg);

    p = msg;
    if (strncmp(p, "c=", 2) != 0) goto out;
    p += 2;
    end = strchr(p, ',');
    if (base64_encode(sasl->gs2_header, strlen(sasl->gs2_header), &cbind) < 0) goto out;
    /* no channel binding data: c= is exactly the gs2 header of client-first */
    if ((size_t)(end - p) != cbind.len || memcmp(p, cbind.data, cbind.len) != 0) goto out;
    p = end + 1;
    if (strncmp(p, "r=", 2) != 0) goto out;
    p += 2;
    end = strchr(p, ',');
    if ((size_t)(end - p) != strlen(sasl->nonce) || memcmp(p, sasl->nonce, (size_t)(end - p)) != 0)
        goto out;
    if (end != proof_at) {
        /* extensions between the nonce and the proof */
        char *ext = xstrndup(end + 1, (size_t)(proof_at - end - 1));
        bool ok = scram_extensions_ok(ext);
        free(ext);
        if (!ok) goto out;
    }
    if (base64_decode(proof_at + 3, strlen(proof_at + 3), &proof) < 0 || proof.len != SCRAM_KEY_LEN)
        goto out;

    /* AuthMessage is complete with client-final-message-without-proof */
    if (sbuf_append(&sasl->auth_message, msg, without_proof_len) < 0) goto out;
    const unsigned char *am = (const unsigned char *)sasl->auth_message.data;
    size_t am_len = sasl->auth_message.len;
    unsigned int n = 0;

    /* ClientKey = ClientProof XOR HMAC(StoredKey, AuthMessage); H(ClientKey) = StoredKey? */
    if (HMAC(EVP_sha256(), sasl->secret.stored_key, SCRAM_KEY_LEN, am, am_len, client_sig, &n) ==
            NULL ||
        n != SCRAM_KEY_LEN) {
        status = SASL_STATUS_TEMPFAIL;
        goto out;
    }
    for (size_t i = 0; i < SCRAM_KEY_LEN; i++)
        client_key[i] = (unsigned char)proof.data[i] ^ client_sig[i];
    if (SHA256(client_key, SCRAM_KEY_LEN, stored_key) == NULL) {
        status = SASL_STATUS_TEMPFAIL;
        goto out;
    }
    int mismatch = CRYPTO_memcmp(stored_key, sasl->secret.stored_key, SCRAM_KEY_LEN);
    if (mismatch != 0 || sasl->fake) {
        status = SASL_STATUS_FAIL;
        goto out;
    }

    /* server-final-message = "v=" base64(HMAC(ServerKey, AuthMessage)) */
    if (HMAC(EVP_sha256(), sasl->secret.server_key, SCRAM_KEY_LEN, am, am_len, server_sig, &n) ==
            NULL ||
        n != SCRAM_KEY_LEN) {
        status = SASL_STATUS_TEMPFAIL;
        goto out;
    }
    struct sbuf sf = SBUF_INIT(SCRAM_SERVER_FINAL_MAX);
    if (sbuf_appends(&sf, "v=") < 0 || base64_encode(server_sig, SCRAM_KEY_LEN, &sf) < 0 ||
        encode_challenge(sf.data, sf.len, challenge_r) < 0) {
        sbuf_free(&sf);
        status = SASL_STATUS_TEMPFAIL;
        goto out;
    }
    sbuf_free(&sf);
    sasl->state = ST_SCRAM_ACK;
    status = SASL_STATUS_CONTINUE;
out:
    sbuf_free(&cbind);
    wipe_sbuf(&proof);
    OPENSSL_cleanse(client_sig, sizeof(client_sig));
    OPENSSL_cleanse(client_key, sizeof(client_key));
    OPENSSL_cleanse(stored_key, sizeof(stored_key));
    OPENSSL_cleanse(server_sig, sizeof(server_sig));
    return status;
}

static enum sasl_status scram_step(struct sasl_server *sasl, const char *msg, size_t len,
                                   struct sbuf *challenge_r)
{
    if (sasl->state == ST_SCRAM_ACK) return len == 0 ? SASL_STATUS_OK : SASL_STATUS_MALFORMED;
    /* SCRAM messages are text: an embedded NUL is a syntax error */
    if (memchr(msg, '\0', len) != NULL) return SASL_STATUS_MALFORMED;
    if (sasl->state == ST_SCRAM_FIRST) return scram_first(sasl, msg, challenge_r);
    return scram_final(sasl, msg, challenge_r);
}

/* The first state of a mechanism, i.e. what an initial response is. */
static enum state first_state(enum sasl_mech mech)
{
    switch (mech) {
    case SASL_MECH_PLAIN: return ST_PLAIN;
    case SASL_MECH_LOGIN: return ST_LOGIN_USER;
    case SASL_MECH_SCRAM_SHA_256: return ST_SCRAM_FIRST;
    }
    return ST_DONE;
}

enum sasl_status sasl_server_step(struct sasl_server *sasl, const char *response,
                                  struct sbuf *challenge_r)
{
    enum sasl_status status;

    sbuf_reset(challenge_r);
    if (sasl->state == ST_DONE) return SASL_STATUS_MALFORMED;

    if (sasl->state == ST_START) {
        sasl->state = first_state(sasl->mech);
        if (sasl->state == ST_DONE) return SASL_STATUS_MALFORMED;
        if (response == NULL) {
            /* no initial response: prompt for the first message */
            static const char prompt[] = "Username:";
            if (sasl->mech == SASL_MECH_LOGIN &&
                encode_challenge(prompt, strlen(prompt), challenge_r) < 0) {
                sasl->state = ST_DONE;
                return SASL_STATUS_TEMPFAIL;
            }
            return SASL_STATUS_CONTINUE;
        }
    }

    /* one allocation of the largest size, so no copy of a password is left behind by a
     * reallocation; reset because sbuf_reserve() leaves new memory unterminated */
    struct sbuf msg = SBUF_INIT(SASL_MAX_RESPONSE);
    if (sbuf_reserve(&msg, SASL_MAX_RESPONSE) < 0) abort();
    sbuf_reset(&msg);
    if (response == NULL || strnlen(response, MAX_RESPONSE_TEXT + 1) > MAX_RESPONSE_TEXT ||
        base64_decode(response, strlen(response), &msg) < 0) {
        status = SASL_STATUS_MALFORMED;
    } else {
        const char *text = sbuf_cstr(&msg);
        switch (sasl->state) {
        case ST_PLAIN: status = plain_step(sasl, text, msg.len); break;
        case ST_LOGIN_USER:
        case ST_LOGIN_PASS: status = login_step(sasl, text, msg.len, challenge_r); break;
        case ST_SCRAM_FIRST:
        case ST_SCRAM_FINAL:
        case ST_SCRAM_ACK: status = scram_step(sasl, text, msg.len, challenge_r); break;
        default: status = SASL_STATUS_MALFORMED; break;
        }
    }
    wipe_sbuf(&msg);

    if (status != SASL_STATUS_CONTINUE) {
        sasl->state = ST_DONE;
        sbuf_reset(challenge_r);
        wipe_exchange(sasl);
    }
    return status;
}
