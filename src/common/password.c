/* password.c - salted, slow password hashes that double as SCRAM-SHA-256 secrets
 *
 * The stored form is "$scram-sha-256$<iterations>$<salt>$<StoredKey>$<ServerKey>" with
 * the three binary fields in canonical base64 (see password.h). A plaintext password is
 * checked by deriving SaltedPassword with PBKDF2-HMAC-SHA-256 and comparing the StoredKey
 * and ServerKey it yields; SCRAM uses the parsed keys directly (sasl.c).
 *
 * SECURITY: the parser accepts only the exact form we write: the literal prefix, a
 * decimal iteration count without sign or leading zero inside PASSWORD_MIN_ITERATIONS ..
 * PASSWORD_MAX_ITERATIONS, a salt of SALT_MIN_LEN..64 bytes, keys of exactly 32 bytes,
 * nothing after. Keys are compared with CRYPTO_memcmp; intermediate secrets are wiped
 * with OPENSSL_cleanse. Salts come from RAND_bytes. A failure of OpenSSL's random
 * generator or PBKDF2 while hashing (which does not depend on client input) aborts the
 * process, like out-of-memory: a stored form must never be built from a weak salt.
 */
#include "password.h"

#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include "base64.h"
#include "sbuf.h"
#include "xalloc.h"

#define PREFIX            "$scram-sha-256$"
#define KEY_LEN           32  /* SHA-256 output */
#define SALT_LEN          16  /* salt of a new hash */
#define SALT_MIN_LEN      8   /* shortest salt accepted in a stored form */
#define ITERATIONS_DIGITS 8   /* PASSWORD_MAX_ITERATIONS has 8 digits */
#define STORED_MAX        256 /* longest stored form accepted */
#define FAKE_KEY_LEN      32  /* key for password_fake_secret() (password_set_fake_key) */

static void fatal(const char *what)
{
    char msg[128];
    int n = snprintf(msg, sizeof(msg), "alkaid: %s failed\n", what);
    if (n > 0) (void)!write(STDERR_FILENO, msg, (size_t)n);
    abort();
}

static unsigned clamp_iterations(unsigned iterations)
{
    if (iterations < PASSWORD_MIN_ITERATIONS) return PASSWORD_MIN_ITERATIONS;
    if (iterations > PASSWORD_MAX_ITERATIONS) return PASSWORD_MAX_ITERATIONS;
    return iterations;
}

static int hmac_sha256(const void *key, size_t key_len, const void *data, size_t data_len,
                       unsigned char out[KEY_LEN])
{
    unsigned int out_len = 0;
    if (key_len > INT_MAX) return -1;
    if (HMAC(EVP_sha256(), key, (int)key_len, data, data_len, out, &out_len) == NULL) return -1;
    return out_len == KEY_LEN ? 0 : -1;
}

/* SaltedPassword, then StoredKey and ServerKey from it (RFC 5802 section 3). */
static unsigned long pbkdf2_runs;

unsigned long password_test_pbkdf2_runs(void)
{
    return __atomic_load_n(&pbkdf2_runs, __ATOMIC_RELAXED);
}

static int derive_keys(const char *password, size_t password_len, const unsigned char *salt,
                       size_t salt_len, unsigned iterations, unsigned char stored_r[KEY_LEN],
                       unsigned char server_r[KEY_LEN])
{
    __atomic_fetch_add(&pbkdf2_runs, 1, __ATOMIC_RELAXED);
    unsigned char salted[KEY_LEN], client_key[KEY_LEN];
    int ret = -1;

    if (password_len > INT_MAX || salt_len > INT_MAX || iterations > INT_MAX) return -1;
    if (PKCS5_PBKDF2_HMAC(password_len ? password : "", (int)password_len, salt, (int)salt_len,
                          (int)iterations, EVP_sha256(), KEY_LEN, salted) != 1)
        goto out;
    if (hmac_sha256(salted, KEY_LEN, "Client Key", 10, client_key) < 0) goto out;
    if (SHA256(client_key, KEY_LEN, stored_r) == NULL) goto out;
    if (hmac_sha256(salted, KEY_LEN, "Server Key", 10, server_r) < 0) goto out;
    ret = 0;
out:
    OPENSSL_cleanse(salted, sizeof(salted));
    OPENSSL_cleanse(client_key, sizeof(client_key));
    return ret;
}

char *password_hash(const char *password, size_t password_len, unsigned iterations)
{
    struct scram_secret s;
    struct sbuf out = SBUF_INIT(STORED_MAX);

    s.iterations = clamp_iterations(iterations);
    s.salt_len = SALT_LEN;
    if (RAND_bytes(s.salt, SALT_LEN) != 1) fatal("RAND_bytes");
    if (derive_keys(password, password_len, s.salt, s.salt_len, s.iterations, s.stored_key,
                    s.server_key) < 0)
        fatal("PBKDF2-HMAC-SHA-256");

    if (sbuf_printf(&out, PREFIX "%u$", s.iterations) < 0 ||
        base64_encode(s.salt, s.salt_len, &out) < 0 || sbuf_putc(&out, '$') < 0 ||
        base64_encode(s.stored_key, KEY_LEN, &out) < 0 || sbuf_putc(&out, '$') < 0 ||
        base64_encode(s.server_key, KEY_LEN, &out) < 0)
        fatal("password_hash formatting"); /* cannot happen: the form is far below max */
    OPENSSL_cleanse(&s, sizeof(s));
    return sbuf_steal(&out);
}

/* Decodes the base64 field text[0..len) into exactly min..max bytes at out. */
static int decode_field(const char *text, size_t len, unsigned char *out, size_t min, size_t max,
                        size_t *len_r)
{
    struct sbuf sb = SBUF_INIT(max);
    int ret = -1;

    if (base64_decode(text, len, &sb) == 0 && sb.len >= min && sb.len <= max) {
        memcpy(out, sb.data, sb.len);
        *len_r = sb.len;
        ret = 0;
    }
    if (sb.data) OPENSSL_cleanse(sb.data, sb.cap);
    sbuf_free(&sb);
    return ret;
}

int password_scram_secret(const char *hash, struct scram_secret *secret_r)
{
    struct scram_secret s;
    const char *p, *end;
    size_t n;
    int ret = -1;

    if (hash == NULL) return -1;
    if (strnlen(hash, STORED_MAX + 1) > STORED_MAX) return -1;
    if (strncmp(hash, PREFIX, strlen(PREFIX)) != 0) return -1;
    p = hash + strlen(PREFIX);

    /* iterations: 1-8 digits, no leading zero */
    unsigned long it = 0;
    size_t digits = 0;
    if (*p == '0') return -1;
    while (*p >= '0' && *p <= '9' && digits < ITERATIONS_DIGITS) {
        it = it * 10 + (unsigned long)(*p - '0');
        p++;
        digits++;
    }
    if (digits == 0 || *p != '$') return -1;
    if (it < PASSWORD_MIN_ITERATIONS || it > PASSWORD_MAX_ITERATIONS) return -1;
    memset(&s, 0, sizeof(s));
    s.iterations = (unsigned)it;
    p++;

    /* salt */
    end = strchr(p, '$');
    if (end == NULL) goto out;
    if (decode_field(p, (size_t)(end - p), s.salt, SALT_MIN_LEN, sizeof(s.salt), &s.salt_len) < 0)
        goto out;
    p = end + 1;

    /* StoredKey */
    end = strchr(p, '$');
    if (end == NULL) goto out;
    if (decode_field(p, (size_t)(end - p), s.stored_key, KEY_LEN, KEY_LEN, &n) < 0) goto out;
    p = end + 1;

    /* ServerKey: the rest of the string, with no further '$' */
    if (strchr(p, '$') != NULL) goto out;
    if (decode_field(p, strlen(p), s.server_key, KEY_LEN, KEY_LEN, &n) < 0) goto out;

    *secret_r = s;
    ret = 0;
out:
    OPENSSL_cleanse(&s, sizeof(s));
    return ret;
}

/* ---- the cache of verified passwords ----
 * A slot holds HMAC(cache key, stored form NUL password) of a password that was right,
 * and when it expires. The key is random per process, so a slot's tag tells nothing
 * about the password; a new password means a new stored form (a new salt), so old
 * entries can never match it. Only successes are cached: a wrong guess always costs the
 * full PBKDF2. */
#define CACHE_SLOTS 16384

struct cache_slot {
    unsigned char tag[KEY_LEN];
    int64_t expires; /* seconds, CLOCK_MONOTONIC; 0 = empty */
};

static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;
static struct cache_slot *cache;
static unsigned cache_ttl;
static unsigned char cache_key[KEY_LEN];

void password_cache_configure(unsigned ttl_seconds)
{
    pthread_mutex_lock(&cache_lock);
    if (ttl_seconds && cache == NULL) {
        if (RAND_bytes(cache_key, sizeof(cache_key)) != 1) fatal("RAND_bytes");
        cache = xcalloc(CACHE_SLOTS, sizeof(*cache));
    } else if (ttl_seconds == 0 && cache) {
        OPENSSL_cleanse(cache, CACHE_SLOTS * sizeof(*cache));
        xfree(cache);
    }
    cache_ttl = ttl_seconds;
    pthread_mutex_unlock(&cache_lock);
}

static int64_t mono_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec;
}

/* The cache tag of (hash, password); false if the cache is off. */
static bool cache_tag(const char *password, size_t len, const char *hash,
                      unsigned char tag[KEY_LEN])
{
    if (__atomic_load_n(&cache_ttl, __ATOMIC_RELAXED) == 0) return false;
    unsigned int n = 0;
    struct sbuf msg = SBUF_INIT(SBUF_NO_MAX);
    sbuf_append(&msg, hash, strlen(hash) + 1);
    sbuf_append(&msg, password, len);
    bool ok = HMAC(EVP_sha256(), cache_key, KEY_LEN, (const unsigned char *)msg.data, msg.len, tag,
                   &n) != NULL &&
              n == KEY_LEN;
    OPENSSL_cleanse(msg.data, msg.len);
    sbuf_free(&msg);
    return ok;
}

static bool cache_hit(const unsigned char tag[KEY_LEN])
{
    bool hit = false;
    pthread_mutex_lock(&cache_lock);
    if (cache) {
        struct cache_slot *slot = &cache[(tag[0] | (unsigned)tag[1] << 8) % CACHE_SLOTS];
        hit = slot->expires > mono_seconds() && CRYPTO_memcmp(slot->tag, tag, KEY_LEN) == 0;
    }
    pthread_mutex_unlock(&cache_lock);
    return hit;
}

static void cache_put(const unsigned char tag[KEY_LEN])
{
    pthread_mutex_lock(&cache_lock);
    if (cache) {
        struct cache_slot *slot = &cache[(tag[0] | (unsigned)tag[1] << 8) % CACHE_SLOTS];
        memcpy(slot->tag, tag, KEY_LEN);
        slot->expires = mono_seconds() + cache_ttl;
    }
    pthread_mutex_unlock(&cache_lock);
}

int password_verify(const char *password, size_t password_len, const char *hash)
{
    struct scram_secret s;
    unsigned char stored[KEY_LEN], server[KEY_LEN], tag[KEY_LEN];
    int ret = 0;

    if (password_scram_secret(hash, &s) < 0) return -1;
    bool cached = cache_tag(password, password_len, hash, tag);
    if (cached && cache_hit(tag)) {
        OPENSSL_cleanse(&s, sizeof(s));
        return 1;
    }
    if (derive_keys(password, password_len, s.salt, s.salt_len, s.iterations, stored, server) ==
        0) {
        /* both compared, without an early exit */
        int diff = CRYPTO_memcmp(stored, s.stored_key, KEY_LEN) |
                   CRYPTO_memcmp(server, s.server_key, KEY_LEN);
        ret = diff == 0;
    }
    if (ret == 1 && cached) cache_put(tag);
    OPENSSL_cleanse(tag, sizeof(tag));
    OPENSSL_cleanse(&s, sizeof(s));
    OPENSSL_cleanse(stored, sizeof(stored));
    OPENSSL_cleanse(server, sizeof(server));
    return ret;
}

static pthread_once_t fake_once = PTHREAD_ONCE_INIT;
static pthread_rwlock_t fake_lock = PTHREAD_RWLOCK_INITIALIZER;
static unsigned char fake_key[FAKE_KEY_LEN];

static void fake_key_init(void)
{
    if (RAND_bytes(fake_key, sizeof(fake_key)) != 1) fatal("RAND_bytes");
}

void password_set_fake_key(const void *key, size_t len)
{
    unsigned char k[FAKE_KEY_LEN];
    /* whatever its length, the key becomes FAKE_KEY_LEN bytes: SHA-256 of it */
    if (SHA256(key, len, k) == NULL) fatal("SHA-256");
    pthread_once(&fake_once, fake_key_init);
    pthread_rwlock_wrlock(&fake_lock);
    memcpy(fake_key, k, sizeof(fake_key));
    pthread_rwlock_unlock(&fake_lock);
    OPENSSL_cleanse(k, sizeof(k));
}

void password_fake_secret(const char *username, unsigned iterations, struct scram_secret *secret_r)
{
    unsigned char seed[KEY_LEN], salt[KEY_LEN];

    pthread_once(&fake_once, fake_key_init);
    memset(secret_r, 0, sizeof(*secret_r));
    secret_r->iterations = clamp_iterations(iterations);
    /* seed = HMAC(key, username); each part = HMAC(seed, label) */
    pthread_rwlock_rdlock(&fake_lock);
    int r = hmac_sha256(fake_key, sizeof(fake_key), username, strlen(username), seed);
    pthread_rwlock_unlock(&fake_lock);
    if (r < 0 || hmac_sha256(seed, KEY_LEN, "salt", 4, salt) < 0 ||
        hmac_sha256(seed, KEY_LEN, "StoredKey", 9, secret_r->stored_key) < 0 ||
        hmac_sha256(seed, KEY_LEN, "ServerKey", 9, secret_r->server_key) < 0)
        fatal("HMAC-SHA-256");
    memcpy(secret_r->salt, salt, SALT_LEN);
    secret_r->salt_len = SALT_LEN;
    OPENSSL_cleanse(seed, sizeof(seed));
    OPENSSL_cleanse(salt, sizeof(salt));
}

void password_dummy_verify(const char *password, size_t password_len)
{
    /* A well-formed stored form with the default cost; no password matches all-zero keys
     * (that would need a SHA-256 preimage). Going through password_verify() itself keeps
     * the parse, derivation and comparison the same as for a real account. */
    char hash[STORED_MAX];
    int n = snprintf(hash, sizeof(hash),
                     PREFIX "%u$AAAAAAAAAAAAAAAAAAAAAA==$"
                            "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=$"
                            "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
                     (unsigned)PASSWORD_DEFAULT_ITERATIONS);
    if (n > 0 && (size_t)n < sizeof(hash)) (void)password_verify(password, password_len, hash);
}
