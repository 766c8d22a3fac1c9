/* testutil.h - scaffolding the unit tests share: scratch directories, small files, SCRAM
 *
 * Included by tests/unit/test_<module>.c. Everything is static inline: there is no extra
 * source file to build, and a test that leaves a helper unused gets no warning for it.
 * make_tmpdir() makes a fresh directory under $ALKAID_TEST_TMP (CTest sets it to
 * <build>/tests/tmp) or /tmp, rm_rf() removes a tree, and teardown_tmpdir() is the cmocka
 * teardown for a test whose state is such a directory. write_plain(), exists() and
 * count_entries() set up and check files; the writers fail the test on an error.
 * reference_form() computes a stored password form from RFC 5802's definitions with
 * OpenSSL, independently of password.c.
 *
 * SECURITY: rm_rf() walks with FTW_PHYS, so a symbolic link in a scratch directory is
 * removed, never followed.
 */
#ifndef ALKAID_TESTUTIL_H
#define ALKAID_TESTUTIL_H

#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

#include "base64.h"
#include "fsutil.h"
#include "sbuf.h"
#include "xalloc.h"

/* ---- scratch directories ---------------------------------------------------------- */

/* A new directory base/<tag>-XXXXXX (base made if missing). NULL if it cannot be made. */
static inline char *make_tmpdir_in(const char *base, const char *tag)
{
    if (fs_mkdirs(base, 0700) < 0) return NULL;
    char *dir = xasprintf("%s/%s-XXXXXX", base, tag);
    if (mkdtemp(dir) == NULL) {
        free(dir);
        return NULL;
    }
    return dir;
}

/* A new directory <tag>-XXXXXX under $ALKAID_TEST_TMP, or /tmp if that is unset. */
static inline char *make_tmpdir(const char *tag)
{
    const char *base = getenv("ALKAID_TEST_TMP");
    if (base == NULL || base[0] == '\0') base = "/tmp";
    return make_tmpdir_in(base, tag);
}

static inline int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    if (flag == FTW_DP || flag == FTW_D)
        rmdir(path);
    else
        unlink(path);
    return 0;
}

/* Removes path and everything below it, as far as it can. */
static inline void rm_rf(const char *path)
{
    nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* A cmocka teardown for a test whose state is a make_tmpdir() directory. */
static inline int teardown_tmpdir(void **state)
{
    char *dir = *state;
    rm_rf(dir);
    free(dir);
    return 0;
}

/* ---- files ------------------------------------------------------------------------ */

/* Writes len bytes to path (created or truncated with mode); fails the test on error.
 * A plain write: the fsyncs of fs_write_file_atomic() are not wanted here. */
static inline void write_file_mode(const char *path, const void *data, size_t len, mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
    assert_true(fd >= 0);
    assert_int_equal(fs_write_all(fd, data, len), 0);
    close(fd);
}

static inline void write_plain(const char *path, const void *data, size_t len)
{
    write_file_mode(path, data, len, 0600);
}

/* Whether anything (a dangling symbolic link too) is at path. */
static inline bool exists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0;
}

/* The entries of dir other than "." and "..", or -1 if it cannot be opened. */
static inline int count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    if (d == NULL) return -1;
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL)
        if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0) n++;
    closedir(d);
    return n;
}

/* ---- passwords -------------------------------------------------------------------- */

/* The stored form of password with salt_b64 and iterations, built independently of
 * password.c straight from RFC 5802's definitions. */
static inline char *reference_form(const char *password, const char *salt_b64, unsigned iterations)
{
    struct sbuf salt = SBUF_INIT(SBUF_NO_MAX), out = SBUF_INIT(SBUF_NO_MAX);
    unsigned char salted[32], client_key[32], stored[32], server[32];
    unsigned n;

    assert_int_equal(base64_decode(salt_b64, strlen(salt_b64), &salt), 0);
    assert_int_equal(PKCS5_PBKDF2_HMAC(password, (int)strlen(password),
                                       (const unsigned char *)salt.data, (int)salt.len,
                                       (int)iterations, EVP_sha256(), 32, salted),
                     1);
    assert_non_null(
        HMAC(EVP_sha256(), salted, 32, (const unsigned char *)"Client Key", 10, client_key, &n));
    SHA256(client_key, 32, stored);
    assert_non_null(
        HMAC(EVP_sha256(), salted, 32, (const unsigned char *)"Server Key", 10, server, &n));
    assert_int_equal(sbuf_printf(&out, "$scram-sha-256$%u$%s$", iterations, salt_b64), 0);
    assert_int_equal(base64_encode(stored, 32, &out), 0);
    assert_int_equal(sbuf_putc(&out, '$'), 0);
    assert_int_equal(base64_encode(server, 32, &out), 0);
    sbuf_free(&salt);
    return sbuf_steal(&out);
}

#endif
