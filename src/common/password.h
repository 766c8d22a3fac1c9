/* password.h - salted, slow password hashes that double as SCRAM-SHA-256 secrets
 *
 * Stored form (one line, no spaces):
 *   $scram-sha-256$<iterations>$<salt, base64>$<StoredKey, base64>$<ServerKey, base64>
 * SaltedPassword = PBKDF2-HMAC-SHA-256(password, salt, iterations) as in RFC 7677 /
 * RFC 5802; StoredKey = SHA-256(HMAC(SaltedPassword, "Client Key")); ServerKey =
 * HMAC(SaltedPassword, "Server Key"). The password cannot be recovered from it, yet both
 * plaintext logins (PLAIN, LOGIN, USER/PASS) and SCRAM-SHA-256 can be verified.
 *
 * SECURITY: comparisons are constant-time; the salt is 16 random bytes from the OS.
 */
#ifndef ALKAID_PASSWORD_H
#define ALKAID_PASSWORD_H

#include <stddef.h>

#define PASSWORD_DEFAULT_ITERATIONS 10000
#define PASSWORD_MIN_ITERATIONS     4096
#define PASSWORD_MAX_ITERATIONS     10000000

struct scram_secret {
    unsigned iterations;
    unsigned char salt[64];
    size_t salt_len;
    unsigned char stored_key[32];
    unsigned char server_key[32];
};

/* A new stored form for password (xmalloc'ed). iterations outside the MIN..MAX range
 * are clamped into it. */
char *password_hash(const char *password, size_t password_len, unsigned iterations);
/* 1 if password matches hash, 0 if not, -1 if hash is not a stored form we understand. */
int password_verify(const char *password, size_t password_len, const char *hash);
/* Parses a stored form into its SCRAM parts. 0, or -1 if it is not one. */
int password_scram_secret(const char *hash, struct scram_secret *secret_r);
/* A fake but stable secret for a user that does not exist, so that SCRAM for an unknown
 * user looks the same as for a known one (salt derived from the name and a per-process
 * random key). */
void password_fake_secret(const char *username, unsigned iterations, struct scram_secret *secret_r);
/* Turns the cache of verified passwords on (ttl_seconds > 0) or off (0, the default):
 * a password found right is remembered, as a keyed hash together with its stored form,
 * for ttl_seconds, so that the next login with it does not run PBKDF2 again. Wrong
 * passwords are never cached; a changed password never matches an old entry. */
void password_cache_configure(unsigned ttl_seconds);
/* Sets the key fake secrets are derived from (by default a random one per process).
 * Services set one kept in the account store, so that an unknown user gets the same
 * fake salt from every service and after every restart, like a real user. */
void password_set_fake_key(const void *key, size_t len);
/* Spends the same time as password_verify() on a default hash; used for unknown users so
 * that a wrong user and a wrong password take equally long. */
void password_dummy_verify(const char *password, size_t password_len);

/* For tests only: how many PBKDF2 derivations this process has run. */
unsigned long password_test_pbkdf2_runs(void);

#endif
