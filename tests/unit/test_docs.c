/* test_docs.c - every configuration key is documented in docs/config.md
 *
 * Walks config.c's key table (config_key_count / config_key_at) and looks for each key
 * in docs/config.md of the source tree (found relative to this file's __FILE__, or from
 * $ALKAID_SOURCE_DIR). A key counts as documented when the text "[Section] Key" appears
 * anywhere, or when "Key" appears as a whole word in the part of the document under a
 * Markdown heading that names "[Section]" (up to the next heading of the same or a
 * higher level). The test fails with the list of every key that is missing.
 */
#include <ctype.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "config.h"
#include "fsutil.h"
#include "sbuf.h"
#include "xalloc.h"

static char *doc_path(void)
{
    const char *env = getenv("ALKAID_SOURCE_DIR");
    if (env && *env) return xasprintf("%s/docs/config.md", env);
    /* __FILE__ is <source>/tests/unit/test_docs.c */
    char *here = xstrdup(__FILE__);
    char *p = strstr(here, "tests/unit/test_docs.c");
    char *path;
    if (p) {
        *p = '\0';
        path = xasprintf("%sdocs/config.md", here);
    } else {
        path = xstrdup("../../docs/config.md");
    }
    free(here);
    return path;
}

static bool word_char(char c)
{
    return isalnum((unsigned char)c) || c == '_';
}

/* Finds word as a whole word in text[0..len). */
static bool has_word(const char *text, size_t len, const char *word)
{
    size_t wl = strlen(word);
    for (const char *p = text; p + wl <= text + len; p++) {
        p = memmem(p, (size_t)(text + len - p), word, wl);
        if (p == NULL) return false;
        bool left = p == text || !word_char(p[-1]);
        bool right = p + wl == text + len || !word_char(p[wl]);
        if (left && right) return true;
    }
    return false;
}

/* The heading level of the line at p (number of leading '#'), 0 if not a heading. */
static int heading_level(const char *p)
{
    int n = 0;
    while (p[n] == '#')
        n++;
    return (n > 0 && (p[n] == ' ' || p[n] == '\t')) ? n : 0;
}

/* True if key is documented under a heading naming [section]. */
static bool documented_under(const char *doc, const char *section, const char *key)
{
    char *tag = xasprintf("[%s]", section);
    bool found = false;
    const char *line = doc;
    while (*line && !found) {
        const char *eol = strchr(line, '\n');
        size_t llen = eol ? (size_t)(eol - line) : strlen(line);
        int level = heading_level(line);
        if (level > 0 && memmem(line, llen, tag, strlen(tag)) != NULL) {
            /* the section runs to the next heading of this level or higher */
            const char *start = eol ? eol + 1 : line + llen;
            const char *end = start;
            while (*end) {
                int l2 = heading_level(end);
                if (l2 > 0 && l2 <= level) break;
                const char *e2 = strchr(end, '\n');
                end = e2 ? e2 + 1 : end + strlen(end);
            }
            found = has_word(start, (size_t)(end - start), key);
        }
        line = eol ? eol + 1 : line + llen;
    }
    free(tag);
    return found;
}

static void test_every_key_documented(void **state)
{
    char *path = doc_path();
    size_t len = 0;
    char *doc = fs_read_file(path, 4u << 20, &len);
    if (doc == NULL) {
        print_error("%s: %s (docs/config.md must document every key of config.c)\n", path,
                    strerror(errno));
        free(path);
        fail();
    }
    struct sbuf missing = SBUF_INIT(0);
    size_t nmissing = 0;
    size_t n = config_key_count();
    assert_true(n > 0);
    for (size_t i = 0; i < n; i++) {
        const char *section, *key, *def;
        assert_int_equal(config_key_at(i, &section, &key, &def), 0);
        char *inline_form = xasprintf("[%s] %s", section, key);
        bool ok = strstr(doc, inline_form) != NULL || documented_under(doc, section, key);
        free(inline_form);
        if (!ok) {
            sbuf_printf(&missing, "  [%s] %s (default '%s')\n", section, key, def);
            nmissing++;
        }
    }
    if (nmissing)
        print_error("%s does not document %zu of %zu keys:\n%s", path, nmissing, n,
                    sbuf_cstr(&missing));
    sbuf_free(&missing);
    free(doc);
    free(path);
    assert_int_equal(nmissing, 0);
}

/* The checker itself, on a small document. */
static void test_checker(void **state)
{
    const char *doc = "# Configuration\n"
                      "## [SMTP]\n"
                      "| Key | Default |\n"
                      "| `Port` | 25 |\n"
                      "| MaxHops | 30 |\n"
                      "### Notes on [SMTP]\n"
                      "Banner is shown.\n"
                      "## [POP3]\n"
                      "TLSPortX is not TLSPort's neighbour.\n"
                      "Also see [IMAP] Timeout.\n";
    assert_true(documented_under(doc, "SMTP", "Port"));
    assert_true(documented_under(doc, "SMTP", "MaxHops"));
    assert_true(documented_under(doc, "SMTP", "Banner")); /* in a sub-heading */
    assert_false(documented_under(doc, "SMTP", "Timeout"));
    assert_false(documented_under(doc, "POP3", "Port"));
    assert_true(documented_under(doc, "POP3", "TLSPort"));  /* "TLSPort's" */
    assert_false(documented_under(doc, "IMAP", "Timeout")); /* no [IMAP] heading */
    assert_non_null(strstr(doc, "[IMAP] Timeout"));         /* but the inline form */
    assert_false(has_word("MaxSessionsPerIP", 16, "MaxSessions"));
    assert_true(has_word("a MaxSessions b", 15, "MaxSessions"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_checker),
        cmocka_unit_test(test_every_key_documented),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
