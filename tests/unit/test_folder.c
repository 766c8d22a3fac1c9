/* test_folder.c - unit tests for folder.c, folder_index.c and folder_names.c
 *
 * Each test works on a mailbox in a fresh directory under $ALKAID_TEST_TMP (or /tmp).
 * Covered: folder names (valid and refused ones) and paths; the tree (special folders,
 * CREATE with parents and with a trailing '/', LIST, DELETE with and without children
 * and of \Noselect, RENAME with subfolders, of INBOX, onto an existing name; SUBSCRIBE);
 * APPEND / get / STORE / COPY / EXPUNGE; UIDs across close and reload and after an
 * expunge; a deleted index rebuilt with a new UIDVALIDITY; a damaged line, a damaged
 * header, a cut-short last line; compaction; files added and removed behind the index's
 * back (smtpd, POP3); the cheap sync; two views with and without allow_expunge, \Recent;
 * CONDSTORE UNCHANGEDSINCE; two processes appending and storing at once; processes
 * killed with SIGKILL in the middle of changes, checked against an independent replay of
 * the index and the directory.
 *
 * folder_private.h is included for folder_cache_flush() (a fresh load from disk) and to
 * compare the in-memory state with the files.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "folder.h"
#include "folder_private.h"
#include "fsutil.h"
#include "log.h"
#include "spool.h"
#include "testutil.h"
#include "xalloc.h"

static char *log_dir;

struct ctx {
    char *dir; /* the scratch directory */
    char *mbox;
};

static int setup(void **state)
{
    struct ctx *c = xcalloc(1, sizeof(*c));
    c->dir = make_tmpdir("folder");
    if (c->dir == NULL) return -1;
    c->mbox = xasprintf("%s/example.com/alice", c->dir);
    *state = c;
    return 0;
}

static int teardown(void **state)
{
    struct ctx *c = *state;
    folder_cache_flush();
    rm_rf(c->dir);
    free(c->dir);
    free(c->mbox);
    free(c);
    return 0;
}

/* ---- helpers ------------------------------------------------------------------------ */

static struct folder *open_ok(const char *mbox, const char *name)
{
    struct folder *f = NULL;
    const char *err = NULL;
    enum folder_result r = folder_open(mbox, name, &f, &err);
    if (r != FOLDER_OK) fail_msg("folder_open(%s): %d %s", name, r, err ? err : "");
    return f;
}

static uint32_t append_msg(struct folder *f, const char *text, uint32_t flags)
{
    uint32_t uid = 0;
    const char *err = NULL;
    enum folder_result r =
        folder_append_data(f, text, strlen(text), 1700000000, flags, NULL, 0, &uid, &err);
    if (r != FOLDER_OK) fail_msg("append: %s", err ? err : "");
    assert_true(uid > 0);
    return uid;
}

static uint32_t msg_flags(struct folder *f, uint32_t uid)
{
    struct folder_msg m;
    assert_int_equal(folder_get(f, uid, &m), FOLDER_OK);
    free(m.file);
    return m.flags;
}

static char *msg_file(struct folder *f, uint32_t uid)
{
    struct folder_msg m;
    assert_int_equal(folder_get(f, uid, &m), FOLDER_OK);
    return m.file;
}

/* A message file put straight into dir, as smtpd delivers one. */
static char *drop_file(const char *dir, const char *text)
{
    char id[SPOOL_ID_MAX];
    spool_make_id(id, sizeof(id));
    char *name = xasprintf("%s.eml", id);
    char *tmp = xasprintf("%s/.%s.part", dir, id), *path = xasprintf("%s/%s", dir, name);
    write_plain(tmp, text, strlen(text));
    assert_int_equal(rename(tmp, path), 0);
    free(tmp);
    free(path);
    return name;
}

static char *index_path(const char *dir)
{
    return xasprintf("%s/" FOLDER_INDEX, dir);
}

static bool error_log_has(const char *needle)
{
    char *d = xasprintf("%s/error", log_dir);
    DIR *dd = opendir(d);
    bool found = false;
    struct dirent *de;
    while (dd && !found && (de = readdir(dd)) != NULL) {
        if (de->d_name[0] == '.') continue;
        char *p = xasprintf("%s/%s", d, de->d_name);
        char *text = fs_read_file(p, 1 << 24, NULL);
        if (text && strstr(text, needle)) found = true;
        free(text);
        free(p);
    }
    if (dd) closedir(dd);
    free(d);
    return found;
}

static void truncate_log(void)
{
    char *d = xasprintf("%s/error", log_dir);
    DIR *dd = opendir(d);
    struct dirent *de;
    while (dd && (de = readdir(dd)) != NULL) {
        if (de->d_name[0] == '.') continue;
        char *p = xasprintf("%s/%s", d, de->d_name);
        if (truncate(p, 0) < 0) { /* nothing to clear */
        }
        free(p);
    }
    if (dd) closedir(dd);
    free(d);
}

/* ---- names -------------------------------------------------------------------------- */

static void test_names(void **state)
{
    static const char *const good[] = {"INBOX", "inbox",       "Sent",    "Work/2026", "a b",
                                       "a&-b",  "&AOk-t&AOk-", "INBOX/x", "x.eml",     "a~b"};
    const char *why;
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        if (!folder_name_valid(good[i], &why)) fail_msg("%s refused: %s", good[i], why);
    }
    static const char *const bad[] = {"",     "..",    ".",       "a/..",       "../x", "/abs",
                                      "a/",   "a//b",  ".hidden", "a/.b",       "~",    "~user/x",
                                      "a\rb", "a\nb",  "a\x01",   "a\x7f",      "a\\b", "a:b",
                                      "a*",   "a?",    "a\"b",    "a<b",        "a|b",  "bad&",
                                      "&Jjo", "&AGE-", "&-&-x&",  "caf\xc3\xa9"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        why = NULL;
        if (folder_name_valid(bad[i], &why)) fail_msg("\"%s\" accepted", bad[i]);
        assert_non_null(why);
    }
    assert_false(folder_name_valid(NULL, NULL));
    /* depth and length */
    struct sbuf sb = SBUF_INIT(SBUF_NO_MAX);
    for (int i = 0; i < FOLDER_MAX_DEPTH; i++)
        sbuf_appends(&sb, i ? "/a" : "a");
    assert_true(folder_name_valid(sb.data, NULL));
    sbuf_appends(&sb, "/a");
    assert_false(folder_name_valid(sb.data, &why));
    sbuf_reset(&sb);
    for (int i = 0; i < FOLDER_MAX_NAME; i++)
        sbuf_putc(&sb, (i % 200) == 100 ? '/' : 'x');
    assert_true(folder_name_valid(sb.data, NULL));
    sbuf_putc(&sb, 'x');
    assert_false(folder_name_valid(sb.data, NULL));
    sbuf_free(&sb);

    char *p = folder_path("/m", "INBOX");
    assert_string_equal(p, "/m");
    free(p);
    p = folder_path("/m", "iNbOx");
    assert_string_equal(p, "/m");
    free(p);
    p = folder_path("/m", "Inbox/x");
    assert_string_equal(p, "/m/INBOX/x");
    free(p);
    p = folder_path("/m", "Work/2026");
    assert_string_equal(p, "/m/Work/2026");
    free(p);
    assert_null(folder_path("/m", "../etc"));
    assert_null(folder_path("/m", "/etc"));
}

/* ---- the tree ----------------------------------------------------------------------- */

static const struct folder_info *find_info(const struct folder_info *l, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(l[i].name, name) == 0) return &l[i];
    return NULL;
}

static void test_tree(void **state)
{
    struct ctx *c = *state;
    const char *err;
    struct folder_info *l;
    size_t n;
    assert_int_equal(folder_mailbox_init(c->mbox, &err), FOLDER_OK);
    assert_int_equal(folder_list(c->mbox, &l, &n, &err), FOLDER_OK);
    assert_int_equal(n, 5);
    assert_string_equal(l[0].name, "INBOX");
    assert_true(l[0].subscribed);
    assert_false(l[0].children);
    const struct folder_info *fi = find_info(l, n, "Junk");
    assert_non_null(fi);
    assert_string_equal(fi->special, "\\Junk");
    assert_true(fi->subscribed);
    assert_string_equal(find_info(l, n, "Sent")->special, "\\Sent");
    assert_string_equal(find_info(l, n, "Drafts")->special, "\\Drafts");
    assert_string_equal(find_info(l, n, "Trash")->special, "\\Trash");
    for (size_t i = 2; i < n; i++)
        assert_true(strcmp(l[i - 1].name, l[i].name) < 0);
    folder_list_free(&l, n);

    /* a special folder the user deleted is not made again */
    assert_int_equal(folder_delete(c->mbox, "Trash", &err), FOLDER_OK);
    assert_int_equal(folder_mailbox_init(c->mbox, &err), FOLDER_OK);
    assert_int_equal(folder_list(c->mbox, &l, &n, &err), FOLDER_OK);
    assert_null(find_info(l, n, "Trash"));
    folder_list_free(&l, n);

    /* CREATE */
    assert_int_equal(folder_create(c->mbox, "a/b/c", &err), FOLDER_OK);
    assert_int_equal(folder_create(c->mbox, "a/b", &err), FOLDER_EXISTS);
    assert_int_equal(folder_create(c->mbox, "inbox", &err), FOLDER_EXISTS);
    assert_int_equal(folder_create(c->mbox, "../x", &err), FOLDER_INVALID);
    assert_int_equal(folder_create(c->mbox, "lvl/", &err), FOLDER_OK);
    assert_int_equal(folder_create(c->mbox, "INBOX/kid", &err), FOLDER_OK);
    char *inbox_kid = xasprintf("%s/INBOX/kid", c->mbox);
    assert_true(exists(inbox_kid));
    free(inbox_kid);
    assert_int_equal(folder_list(c->mbox, &l, &n, &err), FOLDER_OK);
    assert_true(l[0].children); /* INBOX/kid */
    assert_non_null(find_info(l, n, "INBOX/kid"));
    assert_true(find_info(l, n, "a")->children);
    assert_false(find_info(l, n, "a")->noselect);
    assert_true(find_info(l, n, "a/b")->children);
    assert_false(find_info(l, n, "a/b/c")->children);
    assert_true(find_info(l, n, "lvl")->noselect);
    assert_false(find_info(l, n, "a")->subscribed);
    folder_list_free(&l, n);
    struct folder *f = NULL;
    assert_int_equal(folder_open(c->mbox, "lvl", &f, &err), FOLDER_NOSELECTABLE);
    assert_int_equal(folder_open(c->mbox, "nothere", &f, &err), FOLDER_NOTFOUND);
    assert_null(f);

    /* DELETE of a folder with children: \Noselect, messages gone */
    f = open_ok(c->mbox, "a");
    append_msg(f, "Subject: in a\r\n\r\nx\r\n", 0);
    folder_close(&f);
    assert_int_equal(folder_delete(c->mbox, "a", &err), FOLDER_OK);
    char *adir = xasprintf("%s/a", c->mbox);
    assert_int_equal(count_entries(adir), 2); /* the marker and b/ */
    assert_int_equal(folder_list(c->mbox, &l, &n, &err), FOLDER_OK);
    assert_true(find_info(l, n, "a")->noselect);
    assert_true(find_info(l, n, "a")->children);
    folder_list_free(&l, n);
    assert_int_equal(folder_open(c->mbox, "a", &f, &err), FOLDER_NOSELECTABLE);
    assert_int_equal(folder_delete(c->mbox, "a", &err), FOLDER_INVALID);
    assert_int_equal(folder_delete(c->mbox, "INBOX", &err), FOLDER_INVALID);
    assert_int_equal(folder_delete(c->mbox, "zzz", &err), FOLDER_NOTFOUND);
    assert_int_equal(folder_delete(c->mbox, "a/b/c", &err), FOLDER_OK);
    assert_int_equal(folder_delete(c->mbox, "a/b", &err), FOLDER_OK);
    assert_int_equal(folder_delete(c->mbox, "a", &err), FOLDER_OK); /* \Noselect, no children */
    assert_false(exists(adir));
    free(adir);
    /* CREATE makes a \Noselect name a folder again */
    assert_int_equal(folder_create(c->mbox, "lvl", &err), FOLDER_OK);
    f = open_ok(c->mbox, "lvl");
    folder_close(&f);

    /* RENAME with subfolders; onto an existing name; of something missing */
    assert_int_equal(folder_create(c->mbox, "Work/2026", &err), FOLDER_OK);
    f = open_ok(c->mbox, "Work/2026");
    uint32_t uv = folder_uidvalidity(f);
    uint32_t uid = append_msg(f, "Subject: w\r\n\r\nx\r\n", FOLDER_FLAGGED);
    folder_close(&f);
    assert_int_equal(folder_rename(c->mbox, "Work", "Sent", &err), FOLDER_EXISTS);
    assert_int_equal(folder_rename(c->mbox, "Nope", "Other", &err), FOLDER_NOTFOUND);
    assert_int_equal(folder_rename(c->mbox, "Work", "Work/sub", &err), FOLDER_INVALID);
    assert_int_equal(folder_rename(c->mbox, "Work", "Old/Job", &err), FOLDER_OK);
    assert_int_equal(folder_open(c->mbox, "Work/2026", &f, &err), FOLDER_NOTFOUND);
    f = open_ok(c->mbox, "Old/Job/2026");
    assert_int_equal(folder_uidvalidity(f), uv);
    assert_int_equal(msg_flags(f, uid), FOLDER_FLAGGED);
    folder_close(&f);

    /* SUBSCRIBE */
    assert_int_equal(folder_subscribe(c->mbox, "Old/Job", true, &err), FOLDER_OK);
    assert_int_equal(folder_subscribe(c->mbox, "Old/Job", true, &err), FOLDER_OK);
    assert_int_equal(folder_subscribe(c->mbox, "Sent", false, &err), FOLDER_OK);
    assert_int_equal(folder_subscribe(c->mbox, "Sent", false, &err), FOLDER_NOTFOUND);
    assert_int_equal(folder_subscribe(c->mbox, "/bad", true, &err), FOLDER_INVALID);
    assert_int_equal(folder_list(c->mbox, &l, &n, &err), FOLDER_OK);
    assert_true(find_info(l, n, "Old/Job")->subscribed);
    assert_false(find_info(l, n, "Old/Job/2026")->subscribed);
    assert_false(find_info(l, n, "Sent")->subscribed);
    assert_true(find_info(l, n, "Drafts")->subscribed);
    folder_list_free(&l, n);
}

static void test_rename_inbox(void **state)
{
    struct ctx *c = *state;
    const char *err;
    struct folder *in = open_ok(c->mbox, "INBOX");
    uint32_t u1 = append_msg(in, "Subject: one\r\n\r\n1\r\n", FOLDER_SEEN);
    append_msg(in, "Subject: two\r\n\r\n2\r\n", 0);
    const char *kw[] = {"$Important"};
    uint32_t u3;
    assert_int_equal(
        folder_append_data(in, "Subject: 3\r\n\r\n3\r\n", 16, 1700000000, 0, kw, 1, &u3, &err),
        FOLDER_OK);
    char *name1 = msg_file(in, u1);
    assert_int_equal(folder_create(c->mbox, "INBOX/child", &err), FOLDER_OK);
    struct folder_view v;
    folder_view_init(&v, in, false);
    assert_int_equal(v.count, 3);

    assert_int_equal(folder_create(c->mbox, "Taken", &err), FOLDER_OK);
    assert_int_equal(folder_rename(c->mbox, "INBOX", "Taken", &err), FOLDER_EXISTS);
    assert_int_equal(folder_rename(c->mbox, "INBOX", "Archive", &err), FOLDER_OK);
    /* INBOX stays, empty; its child stays where it was */
    struct folder_changes ch;
    assert_int_equal(folder_view_update(&v, true, &ch, &err), FOLDER_OK);
    assert_int_equal(ch.nexpunged, 3);
    assert_int_equal(v.count, 0);
    folder_changes_free(&ch);
    folder_view_free(&v);
    struct folder_status st;
    assert_int_equal(folder_status(c->mbox, "INBOX", &st, &err), FOLDER_OK);
    assert_int_equal(st.messages, 0);
    struct folder *kid = open_ok(c->mbox, "INBOX/child");
    folder_close(&kid);

    struct folder *a = open_ok(c->mbox, "Archive");
    assert_true(folder_uidvalidity(a) > 0);
    struct folder_view va;
    folder_view_init(&va, a, true);
    assert_int_equal(va.count, 3);
    assert_int_equal(va.uids[0], 1);
    char *moved = msg_file(a, va.uids[0]);
    assert_string_equal(moved, name1); /* the same file, moved */
    assert_int_equal(msg_flags(a, va.uids[0]), FOLDER_SEEN);
    struct folder_msg m;
    assert_int_equal(folder_get(a, va.uids[2], &m), FOLDER_OK);
    int bit = folder_keyword_bit(a, "$important");
    assert_true(bit >= 0);
    assert_true(m.keywords & (UINT64_C(1) << bit));
    free(m.file);
    free(moved);
    folder_view_free(&va);
    folder_close(&a);
    folder_close(&in);
    free(name1);
}

/* ---- messages ----------------------------------------------------------------------- */

static void test_messages(void **state)
{
    struct ctx *c = *state;
    const char *err;
    struct folder *f = open_ok(c->mbox, "INBOX");
    assert_int_equal(folder_create(c->mbox, "Other", &err), FOLDER_OK);
    struct folder *o = open_ok(c->mbox, "Other");

    /* APPEND from a file descriptor, with keywords */
    char *src = xasprintf("%s/src.txt", c->dir);
    const char text[] = "From: a@example.com\r\nSubject: hi\r\n\r\nbody\r\n";
    write_plain(src, text, strlen(text));
    int fd = open(src, O_RDONLY);
    assert_true(fd >= 0);
    int kw_a = folder_keyword_bit(f, "Alpha"), kw_b = folder_keyword_bit(f, "beta");
    assert_true(kw_a >= 0 && kw_b >= 0 && kw_a != kw_b);
    assert_int_equal(folder_keyword_bit(f, "ALPHA"), kw_a);
    assert_int_equal(folder_keyword_bit(f, "bad word"), -1);
    assert_int_equal(folder_keyword_bit(f, "\\Seen"), -1);
    uint32_t u1;
    assert_int_equal(folder_append(f, fd, 1600000000, FOLDER_SEEN | FOLDER_DRAFT,
                                   UINT64_C(1) << kw_a, &u1, &err),
                     FOLDER_OK);
    close(fd);
    free(src);
    uint32_t u2 = append_msg(f, "Subject: two\r\n\r\n2\r\n", 0);
    uint32_t u3 = append_msg(f, "Subject: three\r\n\r\n3\r\n", FOLDER_FLAGGED);
    assert_true(u1 < u2 && u2 < u3);

    struct folder_msg m;
    assert_int_equal(folder_get(f, u1, &m), FOLDER_OK);
    assert_int_equal(m.uid, u1);
    assert_int_equal(m.flags, FOLDER_SEEN | FOLDER_DRAFT);
    assert_int_equal(m.keywords, UINT64_C(1) << kw_a);
    assert_int_equal(m.size, strlen(text));
    assert_int_equal(m.internaldate, 1600000000);
    assert_string_equal(folder_keyword(f, (size_t)kw_a), "Alpha");
    assert_true(folder_keyword_count(f) >= 2);
    int mfd = folder_open_message(f, &m);
    assert_true(mfd >= 0);
    char buf[256];
    ssize_t got = read(mfd, buf, sizeof(buf));
    assert_int_equal(got, (ssize_t)strlen(text));
    assert_memory_equal(buf, text, strlen(text));
    struct stat st;
    assert_int_equal(fstat(mfd, &st), 0);
    assert_int_equal(st.st_mtime, 1600000000);
    close(mfd);
    uint64_t ms1 = m.modseq;
    free(m.file);

    /* STORE */
    uint32_t uids[] = {u1, u2, u3};
    assert_int_equal(folder_store(f, uids, 3, FOLDER_STORE_ADD, FOLDER_ANSWERED,
                                  UINT64_C(1) << kw_b, 0, NULL, NULL, &err),
                     FOLDER_OK);
    assert_int_equal(msg_flags(f, u1), FOLDER_SEEN | FOLDER_DRAFT | FOLDER_ANSWERED);
    assert_int_equal(msg_flags(f, u2), FOLDER_ANSWERED);
    assert_int_equal(folder_get(f, u1, &m), FOLDER_OK);
    assert_int_equal(m.keywords, (UINT64_C(1) << kw_a) | (UINT64_C(1) << kw_b));
    assert_true(m.modseq > ms1);
    free(m.file);
    assert_int_equal(folder_store(f, uids, 1, FOLDER_STORE_REMOVE, FOLDER_SEEN, UINT64_C(1) << kw_a,
                                  0, NULL, NULL, &err),
                     FOLDER_OK);
    assert_int_equal(msg_flags(f, u1), FOLDER_DRAFT | FOLDER_ANSWERED);
    assert_int_equal(
        folder_store(f, uids + 2, 1, FOLDER_STORE_SET, FOLDER_DELETED, 0, 0, NULL, NULL, &err),
        FOLDER_OK);
    assert_int_equal(msg_flags(f, u3), FOLDER_DELETED);
    /* a store that changes nothing keeps the modseq */
    struct folder_status s1, s2;
    assert_int_equal(folder_status(c->mbox, "INBOX", &s1, &err), FOLDER_OK);
    assert_int_equal(
        folder_store(f, uids + 2, 1, FOLDER_STORE_ADD, FOLDER_DELETED, 0, 0, NULL, NULL, &err),
        FOLDER_OK);
    assert_int_equal(folder_status(c->mbox, "INBOX", &s2, &err), FOLDER_OK);
    assert_int_equal(s1.highestmodseq, s2.highestmodseq);
    assert_int_equal(s2.messages, 3);
    assert_int_equal(s2.unseen, 3);

    /* COPY: hard links, flags and keywords (by name) kept, UIDs in order */
    uint32_t copy_uids[] = {u3, u1, 9999}, new_uids[3];
    assert_int_equal(folder_copy(f, copy_uids, 3, o, new_uids, &err), FOLDER_OK);
    assert_true(new_uids[0] > 0 && new_uids[1] > new_uids[0]);
    assert_int_equal(new_uids[2], 0);
    assert_int_equal(msg_flags(o, new_uids[0]), FOLDER_DELETED);
    assert_int_equal(folder_get(o, new_uids[1], &m), FOLDER_OK);
    assert_int_equal(m.flags, FOLDER_DRAFT | FOLDER_ANSWERED);
    assert_int_equal(m.internaldate, 1600000000);
    assert_int_equal(folder_keyword_count(o), 1);
    assert_string_equal(folder_keyword(o, 0), "beta");
    assert_int_equal(m.keywords, 1);
    mfd = folder_open_message(o, &m);
    struct stat st2;
    assert_int_equal(fstat(mfd, &st2), 0);
    assert_int_equal(st2.st_ino, st.st_ino); /* a link of the same file */
    close(mfd);
    free(m.file);
    /* COPY into the same folder */
    uint32_t self_uid;
    assert_int_equal(folder_copy(f, &u2, 1, f, &self_uid, &err), FOLDER_OK);
    assert_true(self_uid > u3);

    /* EXPUNGE: the file goes, the UID is never given again */
    char *file3 = msg_file(f, u3);
    char *path3 = xasprintf("%s/%s", c->mbox, file3);
    assert_int_equal(folder_expunge(f, uids + 2, 1, &err), FOLDER_OK);
    assert_false(exists(path3));
    assert_int_equal(folder_get(f, u3, &m), FOLDER_NOTFOUND);
    assert_int_equal(msg_flags(o, new_uids[0]), FOLDER_DELETED); /* the copy stays */
    free(file3);
    free(path3);
    assert_int_equal(folder_expunge(f, &self_uid, 1, &err), FOLDER_OK);
    folder_close(&f);
    folder_close(&o);
    folder_cache_flush();
    f = open_ok(c->mbox, "INBOX");
    assert_int_equal(msg_flags(f, u1), FOLDER_DRAFT | FOLDER_ANSWERED);
    assert_int_equal(folder_get(f, u3, &m), FOLDER_NOTFOUND);
    uint32_t u4 = append_msg(f, "Subject: four\r\n\r\n4\r\n", 0);
    assert_true(u4 > self_uid);
    folder_close(&f);
}

/* COPY between file systems: a real copy with the internal date kept. */
static void test_copy_other_fs(void **state)
{
    struct ctx *c = *state;
    const char *err;
    char *other = make_tmpdir_in("/dev/shm", "folder");
    struct stat a, b;
    if (other == NULL || fs_mkdirs(c->mbox, 0700) < 0 || stat(c->mbox, &a) < 0 ||
        stat(other, &b) < 0 || a.st_dev == b.st_dev) {
        if (other) rm_rf(other);
        free(other);
        skip();
    }
    struct folder *f = open_ok(c->mbox, "INBOX"), *o = open_ok(other, "INBOX");
    uint32_t uid = append_msg(f, "Subject: far\r\n\r\nfar\r\n", FOLDER_SEEN), got;
    assert_int_equal(folder_copy(f, &uid, 1, o, &got, &err), FOLDER_OK);
    assert_int_equal(got, 1);
    struct folder_msg m;
    assert_int_equal(folder_get(o, got, &m), FOLDER_OK);
    assert_int_equal(m.flags, FOLDER_SEEN);
    assert_int_equal(m.internaldate, 1700000000);
    assert_int_equal(m.size, 21);
    int fd = folder_open_message(o, &m);
    struct stat st;
    assert_true(fd >= 0);
    assert_int_equal(fstat(fd, &st), 0);
    assert_int_equal(st.st_mtime, 1700000000);
    close(fd);
    free(m.file);
    folder_close(&f);
    folder_close(&o);
    folder_cache_flush();
    rm_rf(other);
    free(other);
}

static void test_uids_stable(void **state)
{
    struct ctx *c = *state;
    const char *err;
    struct folder *f = open_ok(c->mbox, "INBOX");
    uint32_t uv = folder_uidvalidity(f);
    uint32_t uids[5];
    for (int i = 0; i < 5; i++)
        uids[i] = append_msg(f, "Subject: x\r\n\r\nx\r\n", i % 2 ? FOLDER_SEEN : 0);
    for (int i = 0; i < 5; i++)
        assert_int_equal(uids[i], (uint32_t)i + 1);
    assert_int_equal(folder_expunge(f, uids + 4, 1, &err), FOLDER_OK); /* the highest */
    folder_close(&f);
    folder_cache_flush();
    f = open_ok(c->mbox, "INBOX");
    assert_int_equal(folder_uidvalidity(f), uv);
    for (int i = 0; i < 4; i++)
        assert_int_equal(msg_flags(f, uids[i]), i % 2 ? FOLDER_SEEN : 0);
    assert_int_equal(append_msg(f, "Subject: y\r\n\r\ny\r\n", 0), 6);
    struct folder_status st;
    assert_int_equal(folder_status(c->mbox, "inbox", &st, &err), FOLDER_OK);
    assert_int_equal(st.uidnext, 7);
    assert_int_equal(st.messages, 5);
    assert_int_equal(st.uidvalidity, uv);
    folder_close(&f);
}

/* ---- damage and repair -------------------------------------------------------------- */

static void test_rebuild(void **state)
{
    struct ctx *c = *state;
    const char *err;
    struct folder *f = open_ok(c->mbox, "INBOX");
    uint32_t uv = folder_uidvalidity(f);
    char *names[3];
    for (int i = 0; i < 3; i++) {
        uint32_t u = append_msg(f, "Subject: r\r\n\r\nr\r\n", FOLDER_SEEN);
        names[i] = msg_file(f, u);
    }
    /* the second message's UID expunged, so rebuilt UIDs differ from the old ones */
    uint32_t two = 2;
    char *p2 = xasprintf("%s/%s", c->mbox, names[1]);
    assert_int_equal(folder_expunge(f, &two, 1, &err), FOLDER_OK);
    assert_false(exists(p2));
    free(p2);
    struct folder_view v;
    folder_view_init(&v, f, false);
    char *ip = index_path(c->mbox);
    assert_int_equal(unlink(ip), 0);
    truncate_log();
    assert_int_equal(folder_sync(f, &err), FOLDER_OK);
    assert_true(folder_uidvalidity(f) > uv);
    assert_true(error_log_has("rebuilt"));
    /* UIDs 1, 2 in name order, no flags */
    char *n1 = msg_file(f, 1), *n2 = msg_file(f, 2);
    assert_string_equal(n1, names[0]);
    assert_string_equal(n2, names[2]);
    assert_int_equal(msg_flags(f, 2), 0);
    free(n1);
    free(n2);
    /* a view from before ends */
    struct folder_changes ch;
    assert_int_equal(folder_view_update(&v, true, &ch, &err), FOLDER_NOSELECTABLE);
    folder_view_free(&v);
    /* in a fresh load too */
    uint32_t uv2 = folder_uidvalidity(f);
    folder_close(&f);
    folder_cache_flush();
    f = open_ok(c->mbox, "INBOX");
    assert_int_equal(folder_uidvalidity(f), uv2);
    folder_close(&f);
    for (int i = 0; i < 3; i++)
        free(names[i]);
    free(ip);
}

static void test_damaged_line(void **state)
{
    struct ctx *c = *state;
    const char *err;
    struct folder *f = open_ok(c->mbox, "INBOX");
    uint32_t uv = folder_uidvalidity(f);
    for (int i = 0; i < 5; i++)
        append_msg(f, "Subject: d\r\n\r\nd\r\n", FOLDER_FLAGGED);
    char *three = msg_file(f, 3);
    folder_close(&f);
    folder_cache_flush();
    /* garble the line of UID 3 (the file is rewritten: a new inode) */
    char *ip = index_path(c->mbox);
    size_t len;
    char *text = fs_read_file(ip, 1 << 20, &len);
    assert_non_null(text);
    char *l3 = strstr(text, "\n+ 3 ");
    assert_non_null(l3);
    l3[3] = 'x';
    assert_int_equal(fs_write_file_atomic(ip, text, len, 0600), 0);
    free(text);
    truncate_log();
    f = open_ok(c->mbox, "INBOX");
    assert_true(error_log_has("damaged index line"));
    assert_int_equal(folder_uidvalidity(f), uv);
    for (uint32_t u = 1; u <= 5; u++) {
        if (u == 3) continue;
        assert_int_equal(msg_flags(f, u), FOLDER_FLAGGED);
    }
    /* the file of the lost line got a new UID at the sync */
    struct folder_msg m;
    assert_int_equal(folder_get(f, 3, &m), FOLDER_NOTFOUND);
    char *six = msg_file(f, 6);
    assert_string_equal(six, three);
    free(six);
    free(three);
    folder_close(&f);

    /* a damaged header: moved aside, rebuilt with a new UIDVALIDITY */
    folder_cache_flush();
    text = fs_read_file(ip, 1 << 20, &len);
    text[0] = 'X';
    assert_int_equal(fs_write_file_atomic(ip, text, len, 0600), 0);
    free(text);
    f = open_ok(c->mbox, "INBOX");
    assert_true(folder_uidvalidity(f) > uv);
    char *damaged = xasprintf("%s/" FOLDER_INDEX_DAMAGED, c->mbox);
    assert_true(exists(damaged));
    free(damaged);
    struct folder_status st;
    assert_int_equal(folder_status(c->mbox, "INBOX", &st, &err), FOLDER_OK);
    assert_int_equal(st.messages, 5);
    folder_close(&f);
    free(ip);
}

static void test_truncated_last_line(void **state)
{
    struct ctx *c = *state;
    const char *err;
    struct folder *f = open_ok(c->mbox, "INBOX");
    uint32_t u1 = append_msg(f, "Subject: t\r\n\r\nt\r\n", 0);
    uint32_t u2 = append_msg(f, "Subject: t\r\n\r\nt\r\n", 0);
    folder_close(&f);
    folder_cache_flush();
    /* a writer killed in the middle of its line */
    char *ip = index_path(c->mbox);
    int fd = open(ip, O_WRONLY | O_APPEND);
    assert_true(fd >= 0);
    assert_int_equal(fs_write_all(fd, "= 1 99 SF", 9), 0);
    close(fd);
    truncate_log();
    f = open_ok(c->mbox, "INBOX");
    assert_int_equal(msg_flags(f, u1), 0);
    assert_false(error_log_has("damaged index line"));
    /* the next writer removes it; the log stays clean */
    assert_int_equal(folder_store(f, &u2, 1, FOLDER_STORE_ADD, FOLDER_SEEN, 0, 0, NULL, NULL, &err),
                     FOLDER_OK);
    assert_true(error_log_has("incomplete last index line"));
    folder_close(&f);
    folder_cache_flush();
    f = open_ok(c->mbox, "INBOX");
    assert_int_equal(msg_flags(f, u1), 0);
    assert_int_equal(msg_flags(f, u2), FOLDER_SEEN);
    assert_false(error_log_has("damaged index line"));
    folder_close(&f);
    free(ip);
}

static void test_compaction(void **state)
{
    struct ctx *c = *state;
    const char *err;
    /* 60 messages at once, as smtpd leaves them: one sync, one fdatasync */
    assert_int_equal(fs_mkdirs(c->mbox, 0700), 0);
    for (int i = 0; i < 60; i++)
        free(drop_file(c->mbox, "Subject: c\r\n\r\nc\r\n"));
    struct folder *f = open_ok(c->mbox, "INBOX");
    uint32_t uids[60];
    for (int i = 0; i < 60; i++)
        uids[i] = (uint32_t)i + 1;
    assert_int_equal(folder_expunge(f, uids + 59, 1, &err), FOLDER_OK); /* uidnext > max + 1 */
    int kw = folder_keyword_bit(f, "a-long-keyword-so-that-the-log-grows-quickly-0123456789");
    assert_true(kw >= 0);
    char *ip = index_path(c->mbox);
    struct stat st0, st;
    assert_int_equal(stat(ip, &st0), 0);
    bool compacted = false;
    for (int i = 0; i < 100 && !compacted; i++) {
        assert_int_equal(folder_store(f, uids, 59, i % 2 ? FOLDER_STORE_REMOVE : FOLDER_STORE_ADD,
                                      FOLDER_SEEN, UINT64_C(1) << kw, 0, NULL, NULL, &err),
                         FOLDER_OK);
        assert_int_equal(stat(ip, &st), 0);
        compacted = st.st_ino != st0.st_ino;
    }
    assert_true(compacted);
    assert_true(st.st_size < 16384);
    struct folder_status before, after;
    assert_int_equal(folder_status(c->mbox, "INBOX", &before, &err), FOLDER_OK);
    folder_close(&f);
    folder_cache_flush();
    assert_int_equal(folder_status(c->mbox, "INBOX", &after, &err), FOLDER_OK);
    assert_int_equal(after.uidnext, before.uidnext);
    assert_int_equal(after.uidnext, 61);
    assert_int_equal(after.highestmodseq, before.highestmodseq);
    assert_int_equal(after.uidvalidity, before.uidvalidity);
    assert_int_equal(after.messages, 59);
    assert_int_equal(after.unseen, before.unseen);
    f = open_ok(c->mbox, "INBOX");
    assert_int_equal(append_msg(f, "Subject: c\r\n\r\nc\r\n", 0), 61);
    struct folder_msg m;
    assert_int_equal(folder_get(f, 1, &m), FOLDER_OK);
    assert_int_equal(m.keywords, UINT64_C(1) << folder_keyword_bit(
                                     f, "A-LONG-KEYWORD-so-that-the-log-grows-quickly-0123456789"));
    free(m.file);
    folder_close(&f);
    free(ip);
}

/* ---- others writing the directory --------------------------------------------------- */

static void test_external_files(void **state)
{
    struct ctx *c = *state;
    const char *err;
    assert_int_equal(fs_mkdirs(c->mbox, 0700), 0);
    char *early = drop_file(c->mbox, "Subject: early\r\n\r\ne\r\n");
    struct folder *f = open_ok(c->mbox, "INBOX"); /* first load: numbered, not \Recent */
    struct folder_view v;
    folder_view_init(&v, f, false);
    assert_int_equal(v.count, 1);
    assert_int_equal(v.nrecent, 1); /* numbered by this process's first sync: new */
    char *late = drop_file(c->mbox, "Subject: late\r\n\r\nl\r\n");
    struct folder_changes ch;
    assert_int_equal(folder_view_update(&v, true, &ch, &err), FOLDER_OK);
    assert_int_equal(ch.exists, 2);
    assert_int_equal(ch.recent, 2);
    folder_changes_free(&ch);
    char *n2 = msg_file(f, v.uids[1]);
    assert_string_equal(n2, late);
    free(n2);
    /* POP3 deletes a file: an expunge at the next sync */
    char *path = xasprintf("%s/%s", c->mbox, early);
    assert_int_equal(unlink(path), 0);
    free(path);
    assert_int_equal(folder_view_update(&v, true, &ch, &err), FOLDER_OK);
    assert_int_equal(ch.nexpunged, 1);
    assert_int_equal(ch.expunged_seqs[0], 1);
    assert_int_equal(ch.expunged_uids[0], 1);
    assert_int_equal(v.count, 1);
    folder_changes_free(&ch);
    folder_view_free(&v);
    folder_close(&f);
    free(early);
    free(late);
}

static void test_cheap_sync(void **state)
{
    struct ctx *c = *state;
    const char *err;
    struct folder *f = open_ok(c->mbox, "INBOX");
    append_msg(f, "Subject: a\r\n\r\na\r\n", 0);
    /* an old mtime: the scan is complete and the directory is not read again */
    struct timespec old[2] = {{1500000000, 0}, {1500000000, 0}};
    assert_int_equal(utimensat(AT_FDCWD, c->mbox, old, 0), 0);
    assert_int_equal(folder_sync(f, &err), FOLDER_OK);
    char *name = drop_file(c->mbox, "Subject: b\r\n\r\nb\r\n");
    assert_int_equal(utimensat(AT_FDCWD, c->mbox, old, 0), 0);
    struct folder_status st;
    assert_int_equal(folder_sync(f, &err), FOLDER_OK);
    assert_int_equal(folder_status(c->mbox, "INBOX", &st, &err), FOLDER_OK);
    assert_int_equal(st.messages, 1); /* not looked at */
    assert_int_equal(utimensat(AT_FDCWD, c->mbox, NULL, 0), 0);
    assert_int_equal(folder_status(c->mbox, "INBOX", &st, &err), FOLDER_OK);
    assert_int_equal(st.messages, 2);
    folder_close(&f);
    free(name);
}

/* ---- views -------------------------------------------------------------------------- */

static void test_views(void **state)
{
    struct ctx *c = *state;
    const char *err;
    struct folder *f = open_ok(c->mbox, "INBOX");
    uint32_t u[6];
    for (int i = 0; i < 4; i++)
        u[i] = append_msg(f, "Subject: v\r\n\r\nv\r\n", 0);
    struct folder_view v1, v2, ro;
    folder_view_init(&ro, f, true);
    assert_int_equal(ro.nrecent, 4); /* seen as \Recent, not claimed */
    folder_view_init(&v1, f, false);
    assert_int_equal(v1.count, 4);
    assert_int_equal(v1.nrecent, 4);
    assert_true(folder_view_is_recent(&v1, u[0]));
    folder_view_init(&v2, f, false);
    assert_int_equal(v2.nrecent, 0);
    assert_false(folder_view_is_recent(&v2, u[0]));
    struct folder_status st;
    assert_int_equal(folder_status(c->mbox, "INBOX", &st, &err), FOLDER_OK);
    assert_int_equal(st.recent, 0);

    /* new messages: the first view to see them claims them */
    u[4] = append_msg(f, "Subject: v\r\n\r\nv\r\n", 0);
    u[5] = append_msg(f, "Subject: v\r\n\r\nv\r\n", 0);
    assert_int_equal(folder_status(c->mbox, "INBOX", &st, &err), FOLDER_OK);
    assert_int_equal(st.recent, 2);
    struct folder_changes ch;
    assert_int_equal(folder_view_update(&v2, true, &ch, &err), FOLDER_OK);
    assert_int_equal(ch.exists, 6);
    assert_int_equal(ch.recent, 2);
    assert_int_equal(ch.nexpunged, 0);
    assert_int_equal(ch.nchanged, 0);
    folder_changes_free(&ch);
    assert_int_equal(folder_view_update(&v1, true, &ch, &err), FOLDER_OK);
    assert_int_equal(ch.exists, 6);
    assert_int_equal(ch.recent, 4);
    folder_changes_free(&ch);
    assert_int_equal(folder_view_seq(&v1, u[5]), 6);
    assert_int_equal(folder_view_seq(&v1, 12345), 0);

    /* a flag change is reported to both views */
    assert_int_equal(
        folder_store(f, u + 1, 1, FOLDER_STORE_ADD, FOLDER_DELETED, 0, 0, NULL, NULL, &err),
        FOLDER_OK);
    assert_int_equal(folder_view_update(&v2, true, &ch, &err), FOLDER_OK);
    assert_int_equal(ch.nchanged, 1);
    assert_int_equal(ch.changed_uids[0], u[1]);
    assert_int_equal(ch.exists, 0);
    folder_changes_free(&ch);
    assert_int_equal(folder_view_update(&v2, true, &ch, &err), FOLDER_OK);
    assert_int_equal(ch.nchanged, 0);
    folder_changes_free(&ch);

    /* expunges of UIDs 2, 3 and 5 */
    uint32_t gone[] = {u[1], u[2], u[4]};
    assert_int_equal(folder_expunge(f, gone, 3, &err), FOLDER_OK);
    /* held back: sequence numbers stay; a new message still shows */
    uint32_t u7 = append_msg(f, "Subject: v\r\n\r\nv\r\n", 0);
    assert_int_equal(folder_view_update(&v1, false, &ch, &err), FOLDER_OK);
    assert_int_equal(ch.nexpunged, 0);
    assert_int_equal(ch.exists, 7);
    assert_int_equal(ch.nchanged, 0); /* the \Deleted message is expunged now */
    folder_changes_free(&ch);
    assert_int_equal(v1.count, 7);
    assert_int_equal(folder_view_seq(&v1, u[4]), 5);
    assert_int_equal(folder_view_seq(&v1, u7), 7);
    struct folder_msg m;
    assert_int_equal(folder_get(f, u[4], &m), FOLDER_NOTFOUND);
    /* then reported, each number valid when it is sent */
    assert_int_equal(folder_view_update(&v1, true, &ch, &err), FOLDER_OK);
    assert_int_equal(ch.nexpunged, 3);
    assert_int_equal(ch.expunged_seqs[0], 2);
    assert_int_equal(ch.expunged_seqs[1], 2);
    assert_int_equal(ch.expunged_seqs[2], 3);
    assert_int_equal(ch.expunged_uids[0], u[1]);
    assert_int_equal(ch.expunged_uids[1], u[2]);
    assert_int_equal(ch.expunged_uids[2], u[4]);
    assert_int_equal(ch.exists, 0);
    assert_int_equal(ch.recent, 3); /* u[0], u[3] and u7, which v1 saw first */
    folder_changes_free(&ch);
    assert_int_equal(v1.count, 4);
    assert_int_equal(folder_view_seq(&v1, u[5]), 3);
    assert_int_equal(folder_view_seq(&v1, u7), 4);
    assert_int_equal(folder_view_update(&v2, true, &ch, &err), FOLDER_OK);
    assert_int_equal(ch.nexpunged, 3);
    assert_int_equal(ch.exists, 4); /* the view grew by u7 */
    assert_int_equal(ch.recent, 1); /* u[5]; u7 is v1's */
    folder_changes_free(&ch);
    folder_view_free(&ro);
    folder_view_free(&v1);
    folder_view_free(&v2);
    folder_close(&f);
}

static void test_condstore(void **state)
{
    struct ctx *c = *state;
    const char *err;
    struct folder *f = open_ok(c->mbox, "INBOX");
    uint32_t u[3];
    for (int i = 0; i < 3; i++)
        u[i] = append_msg(f, "Subject: m\r\n\r\nm\r\n", 0);
    struct folder_msg m;
    assert_int_equal(folder_get(f, u[2], &m), FOLDER_OK);
    uint64_t since = m.modseq;
    free(m.file);
    assert_int_equal(
        folder_store(f, u + 1, 1, FOLDER_STORE_ADD, FOLDER_SEEN, 0, 0, NULL, NULL, &err),
        FOLDER_OK); /* u[1] now above since */
    uint32_t failed[3];
    size_t nfailed = 99;
    assert_int_equal(
        folder_store(f, u, 3, FOLDER_STORE_ADD, FOLDER_FLAGGED, 0, since, failed, &nfailed, &err),
        FOLDER_OK);
    assert_int_equal(nfailed, 1);
    assert_int_equal(failed[0], u[1]);
    assert_int_equal(msg_flags(f, u[0]), FOLDER_FLAGGED);
    assert_int_equal(msg_flags(f, u[1]), FOLDER_SEEN);
    assert_int_equal(msg_flags(f, u[2]), FOLDER_FLAGGED);
    struct folder_status st;
    assert_int_equal(folder_status(c->mbox, "INBOX", &st, &err), FOLDER_OK);
    assert_int_equal(folder_get(f, u[2], &m), FOLDER_OK);
    assert_int_equal(m.modseq, st.highestmodseq);
    free(m.file);
    folder_close(&f);
}

/* ---- several processes -------------------------------------------------------------- */

struct replayed {
    uint32_t uid, flags;
    uint64_t modseq;
    char kw[256];
    char file[256];
    bool gone;
};

/* An independent replay of the index: every line but an unfinished last one must parse. */
static struct replayed *replay_index(const char *dir, size_t *n_r, uint32_t *uidnext_r,
                                     uint64_t *hms_r)
{
    char *ip = index_path(dir);
    size_t len;
    char *text = fs_read_file(ip, 1 << 26, &len);
    assert_non_null(text);
    free(ip);
    struct replayed *v = NULL;
    size_t n = 0, cap = 0;
    unsigned uv, un;
    unsigned long long hms;
    char *line = text, *nl = strchr(line, '\n');
    assert_non_null(nl);
    *nl = '\0';
    assert_int_equal(sscanf(line, "ALKAID-INDEX 1 %u %u %llu", &uv, &un, &hms), 3);
    for (line = nl + 1; (nl = strchr(line, '\n')) != NULL; line = nl + 1) {
        *nl = '\0';
        unsigned uid;
        unsigned long long modseq;
        int used = 0;
        if (line[0] == '+') {
            long long date;
            unsigned long long size;
            char file[256], flags[8];
            if (sscanf(line, "+ %u %llu %lld %llu %255s %7s%n", &uid, &modseq, &date, &size, file,
                       flags, &used) != 6)
                fail_msg("bad line: %s", line);
            if (n == cap) {
                cap = cap ? cap * 2 : 64;
                v = xreallocarray(v, cap, sizeof(*v));
            }
            memset(&v[n], 0, sizeof(v[n]));
            v[n].uid = uid;
            v[n].modseq = modseq;
            snprintf(v[n].file, sizeof(v[n].file), "%s", file);
            snprintf(v[n].kw, sizeof(v[n].kw), "%s", line + used);
            for (char *p = flags; *p && *p != '-'; p++)
                v[n].flags |= 1u << (strchr("SAFDT", *p) - "SAFDT");
            if (n > 0) assert_true(uid > v[n - 1].uid);
            if (uid >= un) un = uid + 1;
            n++;
        } else if (line[0] == '=') {
            char flags[8];
            if (sscanf(line, "= %u %llu %7s%n", &uid, &modseq, flags, &used) != 3)
                fail_msg("bad line: %s", line);
            for (size_t i = 0; i < n; i++) {
                if (v[i].uid != uid || v[i].gone) continue;
                v[i].modseq = modseq;
                v[i].flags = 0;
                for (char *p = flags; *p && *p != '-'; p++)
                    v[i].flags |= 1u << (strchr("SAFDT", *p) - "SAFDT");
                snprintf(v[i].kw, sizeof(v[i].kw), "%s", line + used);
            }
        } else if (line[0] == '-') {
            if (sscanf(line, "- %u %llu", &uid, &modseq) != 2) fail_msg("bad line: %s", line);
            for (size_t i = 0; i < n; i++)
                if (v[i].uid == uid) v[i].gone = true;
        } else {
            fail_msg("bad line: %s", line);
        }
        if (modseq > hms) hms = modseq;
    }
    free(text);
    size_t w = 0;
    for (size_t i = 0; i < n; i++)
        if (!v[i].gone) v[w++] = v[i];
    *n_r = w;
    *uidnext_r = un;
    *hms_r = hms;
    return v;
}

static int cmp_word(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* " b a" -> " a b": keyword order in a line is the writer's bit order. */
static void sort_words(char *s)
{
    char copy[256], *w[80];
    size_t n = 0;
    snprintf(copy, sizeof(copy), "%s", s);
    for (char *t = strtok(copy, " "); t && n < 80; t = strtok(NULL, " "))
        w[n++] = t;
    qsort(w, n, sizeof(*w), cmp_word);
    size_t len = 0;
    s[0] = '\0';
    for (size_t i = 0; i < n; i++)
        len += (size_t)snprintf(s + len, 256 - len, " %s", w[i]);
}

/* The folder's state (after a sync) agrees with an independent replay of its index and
 * with the files in its directory. Returns the number of messages. */
static size_t check_consistent(const char *dir, struct folder *f)
{
    const char *err;
    assert_int_equal(folder_sync(f, &err), FOLDER_OK);
    size_t n;
    uint32_t uidnext;
    uint64_t hms;
    struct replayed *r = replay_index(dir, &n, &uidnext, &hms);
    pthread_mutex_lock(&f->mutex);
    assert_int_equal(f->count, n);
    assert_int_equal(f->uidnext, uidnext);
    assert_int_equal(f->highestmodseq, hms);
    for (size_t i = 0; i < n; i++) {
        const struct fmsg *m = &f->msgs[i];
        assert_int_equal(m->uid, r[i].uid);
        assert_int_equal(m->flags, r[i].flags);
        assert_int_equal(m->modseq, r[i].modseq);
        assert_string_equal(m->file, r[i].file);
        char kw[256] = "";
        size_t kl = 0;
        for (size_t k = 0; k < f->nkeywords; k++)
            if (m->keywords & (UINT64_C(1) << k))
                kl += (size_t)snprintf(kw + kl, sizeof(kw) - kl, " %s", f->keywords[k]);
        sort_words(kw);
        sort_words(r[i].kw);
        assert_string_equal(kw, r[i].kw);
        assert_true(m->uid < f->uidnext);
        if (i > 0) assert_true(m->uid > f->msgs[i - 1].uid);
    }
    pthread_mutex_unlock(&f->mutex);
    /* every message file has its entry, every entry its file */
    DIR *d = opendir(dir);
    size_t files = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (!findex_file_ok(de->d_name)) continue;
        files++;
        bool found = false;
        for (size_t i = 0; i < n && !found; i++)
            found = strcmp(r[i].file, de->d_name) == 0;
        if (!found) fail_msg("%s has no index entry", de->d_name);
    }
    closedir(d);
    assert_int_equal(files, n);
    free(r);
    return n;
}

static void test_deleted_while_open(void **state)
{
    struct ctx *c = *state;
    const char *err;
    assert_int_equal(folder_create(c->mbox, "Gone", &err), FOLDER_OK);
    assert_int_equal(folder_create(c->mbox, "Parent/kid", &err), FOLDER_OK);
    struct folder *g = open_ok(c->mbox, "Gone"), *p = open_ok(c->mbox, "Parent");
    append_msg(g, "Subject: g\r\n\r\ng\r\n", 0);
    append_msg(p, "Subject: p\r\n\r\np\r\n", 0);
    struct folder_view vg, vp;
    folder_view_init(&vg, g, false);
    folder_view_init(&vp, p, false);
    assert_int_equal(folder_delete(c->mbox, "Gone", &err), FOLDER_OK);
    assert_int_equal(folder_delete(c->mbox, "Parent", &err), FOLDER_OK);
    struct folder_changes ch;
    assert_int_equal(folder_view_update(&vg, true, &ch, &err), FOLDER_NOTFOUND);
    assert_int_equal(folder_view_update(&vp, true, &ch, &err), FOLDER_NOSELECTABLE);
    uint32_t one = 1;
    assert_int_equal(
        folder_store(g, &one, 1, FOLDER_STORE_ADD, FOLDER_SEEN, 0, 0, NULL, NULL, &err),
        FOLDER_NOTFOUND);
    folder_view_free(&vg);
    folder_view_free(&vp);
    folder_close(&g);
    folder_close(&p);
    /* made again under the same name: a new folder, a higher UIDVALIDITY */
    assert_int_equal(folder_create(c->mbox, "Gone", &err), FOLDER_OK);
    g = open_ok(c->mbox, "Gone");
    struct folder_status st;
    assert_int_equal(folder_status(c->mbox, "Gone", &st, &err), FOLDER_OK);
    assert_int_equal(st.messages, 0);
    assert_int_equal(st.uidnext, 1);
    folder_close(&g);
}

struct thread_arg {
    struct folder *f;
    int who;
    int failed;
};

static void *thread_main(void *p)
{
    struct thread_arg *a = p;
    struct folder_view v;
    const char *err;
    folder_view_init(&v, a->f, false);
    for (int i = 0; i < 15; i++) {
        uint32_t uid;
        if (folder_append_data(a->f, "Subject: t\r\n\r\nt\r\n", 16, 1700000000, 0, NULL, 0, &uid,
                               &err) != FOLDER_OK)
            a->failed++;
        if (folder_store(a->f, &uid, 1, FOLDER_STORE_ADD, FOLDER_FLAGGED, 0, 0, NULL, NULL, &err) !=
            FOLDER_OK)
            a->failed++;
        struct folder_changes ch;
        if (folder_view_update(&v, i % 2, &ch, &err) != FOLDER_OK) a->failed++;
        folder_changes_free(&ch);
        if (folder_view_seq(&v, uid) == 0) a->failed++;
    }
    folder_view_free(&v);
    return NULL;
}

static void test_threads(void **state)
{
    struct ctx *c = *state;
    struct folder *f = open_ok(c->mbox, "INBOX"), *same = open_ok(c->mbox, "inbox");
    assert_ptr_equal(f, same); /* one shared state per directory */
    folder_close(&same);
    pthread_t t[4];
    struct thread_arg a[4];
    for (int i = 0; i < 4; i++) {
        a[i] = (struct thread_arg){f, i, 0};
        assert_int_equal(pthread_create(&t[i], NULL, thread_main, &a[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(a[i].failed, 0);
    }
    assert_int_equal(check_consistent(c->mbox, f), 60);
    folder_close(&f);
}

static void child_appender(const char *mbox, int who, int count)
{
    struct folder *f = NULL;
    const char *err;
    if (folder_open(mbox, "INBOX", &f, &err) != FOLDER_OK) _exit(2);
    uint32_t last = 0;
    for (int i = 0; i < count; i++) {
        char text[64];
        snprintf(text, sizeof(text), "Subject: %d-%d\r\n\r\nx\r\n", who, i);
        uint32_t uid;
        if (folder_append_data(f, text, strlen(text), 1700000000, 0, NULL, 0, &uid, &err) !=
                FOLDER_OK ||
            uid <= last)
            _exit(3);
        last = uid;
        uint32_t target = 1 + (uint32_t)(rand() % (int)uid);
        if (folder_store(f, &target, 1, FOLDER_STORE_ADD, who ? FOLDER_SEEN : FOLDER_FLAGGED, 0, 0,
                         NULL, NULL, &err) != FOLDER_OK)
            _exit(4);
    }
    folder_close(&f);
    _exit(0);
}

static void test_two_processes(void **state)
{
    struct ctx *c = *state;
    assert_int_equal(fs_mkdirs(c->mbox, 0700), 0);
    folder_cache_flush();
    pid_t pids[2];
    for (int w = 0; w < 2; w++) {
        pids[w] = fork();
        assert_true(pids[w] >= 0);
        if (pids[w] == 0) {
            srand((unsigned)getpid());
            child_appender(c->mbox, w, 60);
        }
    }
    /* the parent delivers files behind the index's back meanwhile, as smtpd does */
    for (int i = 0; i < 20; i++) {
        char *name = drop_file(c->mbox, "Subject: smtpd\r\n\r\ns\r\n");
        free(name);
        usleep(500);
    }
    for (int w = 0; w < 2; w++) {
        int status;
        assert_int_equal(waitpid(pids[w], &status, 0), pids[w]);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
    }
    truncate_log();
    struct folder *f = open_ok(c->mbox, "INBOX");
    assert_int_equal(check_consistent(c->mbox, f), 140);
    struct folder_status st;
    const char *err;
    assert_int_equal(folder_status(c->mbox, "INBOX", &st, &err), FOLDER_OK);
    assert_int_equal(st.uidnext, 141);
    folder_close(&f);
    assert_false(error_log_has("damaged"));
}

/* Random changes until killed. */
static void child_random(const char *mbox, unsigned seed)
{
    struct folder *f = NULL;
    const char *err;
    srand(seed);
    if (folder_open(mbox, "INBOX", &f, &err) != FOLDER_OK) _exit(2);
    for (;;) {
        struct folder_status st;
        if (folder_status(mbox, "INBOX", &st, &err) != FOLDER_OK) _exit(3);
        uint32_t uid = 1 + (uint32_t)rand() % st.uidnext;
        int op = rand() % 10;
        if (op < 4) {
            const char *kw[] = {"k0", "k1", "k2"};
            uint32_t got;
            if (folder_append_data(f, "Subject: k\r\n\r\nk\r\n", 16, 1700000000,
                                   (uint32_t)rand() & 31, kw, (size_t)(rand() % 3), &got,
                                   &err) != FOLDER_OK) {
                fprintf(stderr, "append: %s\n", err);
                _exit(4);
            }
        } else if (op < 8) {
            int bit = folder_keyword_bit(f, rand() % 2 ? "k0" : "k3");
            if (folder_store(f, &uid, 1, (enum folder_store_mode)(rand() % 3),
                             (uint32_t)rand() & 31, UINT64_C(1) << bit, 0, NULL, NULL,
                             &err) != FOLDER_OK)
                _exit(5);
        } else if (op < 9) {
            if (folder_expunge(f, &uid, 1, &err) != FOLDER_OK) _exit(6);
        } else {
            char *name = drop_file(mbox, "Subject: smtpd\r\n\r\ns\r\n");
            free(name);
            if (folder_sync(f, &err) != FOLDER_OK) _exit(7);
        }
    }
}

static void test_kill9(void **state)
{
    struct ctx *c = *state;
    const char *err;
    assert_int_equal(fs_mkdirs(c->mbox, 0700), 0);
    truncate_log();
    /* a log just under the compaction size, so that the children compact it too */
    for (int i = 0; i < 200; i++)
        free(drop_file(c->mbox, "Subject: old\r\n\r\no\r\n"));
    struct folder *f0 = open_ok(c->mbox, "INBOX");
    uint32_t all[200];
    for (uint32_t i = 0; i < 200; i++)
        all[i] = i + 1;
    for (int i = 0; i < 20; i++)
        assert_int_equal(folder_store(f0, all, 200, i % 2 ? FOLDER_STORE_REMOVE : FOLDER_STORE_ADD,
                                      FOLDER_SEEN, 0, 0, NULL, NULL, &err),
                         FOLDER_OK);
    folder_close(&f0);
    /* file -> UID as last checked: a file that stays keeps its UID */
    char **files = NULL;
    uint32_t *fuids = NULL;
    size_t nfiles = 0;
    uint32_t last_uidnext = 0;
    for (int round = 0; round < 16; round++) {
        folder_cache_flush(); /* the children start without a cached state */
        pid_t pids[2];
        for (int w = 0; w < 2; w++) {
            pids[w] = fork();
            assert_true(pids[w] >= 0);
            if (pids[w] == 0) child_random(c->mbox, (unsigned)(round * 2 + w + 1));
        }
        usleep(10000 + (useconds_t)(round % 5) * 10000);
        for (int w = 0; w < 2; w++) {
            int status;
            kill(pids[w], SIGKILL);
            assert_int_equal(waitpid(pids[w], &status, 0), pids[w]);
            if (!WIFSIGNALED(status)) fail_msg("child exited with %d", WEXITSTATUS(status));
        }
        /* a fresh load replays the log; a deleted file by POP3 in between */
        if (round % 4 == 3 && nfiles > 0) {
            char *p = xasprintf("%s/%s", c->mbox, files[0]);
            unlink(p);
            free(p);
        }
        struct folder *f = open_ok(c->mbox, "INBOX");
        check_consistent(c->mbox, f);
        pthread_mutex_lock(&f->mutex);
        assert_true(f->uidnext >= last_uidnext);
        last_uidnext = f->uidnext;
        for (size_t i = 0; i < nfiles; i++) {
            uint32_t uid = findex_name_uid(f, files[i]);
            if (uid != 0) assert_int_equal(uid, fuids[i]);
            free(files[i]);
        }
        nfiles = f->count;
        files = xreallocarray(files, nfiles ? nfiles : 1, sizeof(*files));
        fuids = xreallocarray(fuids, nfiles ? nfiles : 1, sizeof(*fuids));
        for (size_t i = 0; i < nfiles; i++) {
            files[i] = xstrdup(f->msgs[i].file);
            fuids[i] = f->msgs[i].uid;
        }
        pthread_mutex_unlock(&f->mutex);
        folder_close(&f);
    }
    for (size_t i = 0; i < nfiles; i++)
        free(files[i]);
    free(files);
    free(fuids);
    assert_false(error_log_has("damaged index line"));
}

int main(void)
{
    log_dir = make_tmpdir("folder-log");
    if (log_dir == NULL || log_init(log_dir) < 0) return 1;
    log_set_enabled(LOG_IMAP, false);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names),
        cmocka_unit_test_setup_teardown(test_tree, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rename_inbox, setup, teardown),
        cmocka_unit_test_setup_teardown(test_messages, setup, teardown),
        cmocka_unit_test_setup_teardown(test_copy_other_fs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_uids_stable, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rebuild, setup, teardown),
        cmocka_unit_test_setup_teardown(test_damaged_line, setup, teardown),
        cmocka_unit_test_setup_teardown(test_truncated_last_line, setup, teardown),
        cmocka_unit_test_setup_teardown(test_compaction, setup, teardown),
        cmocka_unit_test_setup_teardown(test_external_files, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cheap_sync, setup, teardown),
        cmocka_unit_test_setup_teardown(test_views, setup, teardown),
        cmocka_unit_test_setup_teardown(test_condstore, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deleted_while_open, setup, teardown),
        cmocka_unit_test_setup_teardown(test_threads, setup, teardown),
        cmocka_unit_test_setup_teardown(test_two_processes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_kill9, setup, teardown),
    };
    int r = cmocka_run_group_tests(tests, NULL, NULL);
    folder_cache_flush();
    log_shutdown();
    rm_rf(log_dir);
    free(log_dir);
    return r;
}
