/* address.c - mail addresses, domain names and the names Alkaid accepts for accounts
 *
 * Pure string functions: splitting "local@domain", the rules for local domain names
 * (with '*' wildcards) and account local parts, glob matching of a domain against a
 * wildcard pattern, and the directory name of a domain under mail/.
 *
 * SECURITY: a local part and a domain name that pass these checks are used as directory
 * names under mail/. The character sets are allow-lists: no '/', '\\', NUL, control
 * characters or spaces; a name never starts with '.' and never holds "..", so it cannot
 * name "." or ".." or reach outside its parent. The glob matcher runs in O(n*m) time
 * without recursion, so a hostile domain cannot make it take exponential time.
 */
#include "address.h"

#include <string.h>

#include "xalloc.h"

#define DOMAIN_MAX_LABEL 63

static char lower_char(char c)
{
    return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
}

static bool is_alnum(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

char *address_lower(char *s)
{
    for (char *p = s; *p != '\0'; p++)
        *p = lower_char(*p);
    return s;
}

int address_split(const char *address, char **local_r, char **domain_r)
{
    const char *at = strrchr(address, '@');
    if (at == NULL || at == address || at[1] == '\0') return -1;
    *local_r = address_lower(xstrndup(address, (size_t)(at - address)));
    *domain_r = address_lower(xstrdup(at + 1));
    return 0;
}

bool address_domain_valid(const char *domain, bool allow_wildcard)
{
    size_t len = strlen(domain);
    if (len == 0 || len > ADDRESS_MAX_DOMAIN) return false;

    const char *label = domain;
    bool last_label_has_star = false;
    for (;;) {
        const char *end = strchr(label, '.');
        size_t n = end != NULL ? (size_t)(end - label) : strlen(label);
        if (n == 0 || n > DOMAIN_MAX_LABEL) return false;
        if (label[0] == '-' || label[n - 1] == '-') return false;
        last_label_has_star = false;
        for (size_t i = 0; i < n; i++) {
            char c = label[i];
            if (c == '*' && allow_wildcard)
                last_label_has_star = true;
            else if (!is_alnum(c) && c != '-')
                return false;
        }
        if (end == NULL) break;
        label = end + 1;
    }
    /* A pattern must end in a literal label: "*" or "example.*" would make the whole
     * world (or a whole top-level domain of strangers) local. */
    return !last_label_has_star;
}

bool address_localpart_valid(const char *local)
{
    size_t len = strlen(local);
    if (len == 0 || len > ADDRESS_MAX_LOCALPART) return false;
    if (local[0] == '.' || local[len - 1] == '.') return false;
    for (size_t i = 0; i < len; i++) {
        char c = local[i];
        if (c == '.' && local[i + 1] == '.') return false;
        if (!is_alnum(c) && c != '.' && c != '_' && c != '+' && c != '=' && c != '-') return false;
    }
    return true;
}

bool address_domain_match(const char *pattern, const char *domain)
{
    /* The classic greedy wildcard match with a single backtrack point: on a mismatch
     * after a '*', let that '*' swallow one more character and retry. */
    const char *p = pattern, *d = domain;
    const char *star = NULL, *star_d = NULL;

    while (*d != '\0') {
        if (*p == '*') {
            star = p++;
            star_d = d;
        } else if (*p != '\0' && lower_char(*p) == lower_char(*d)) {
            p++;
            d++;
        } else if (star != NULL) {
            p = star + 1;
            d = ++star_d;
        } else {
            return false;
        }
    }
    while (*p == '*')
        p++;
    return *p == '\0';
}

char *address_domain_dir(const char *domain)
{
    char *dir = address_lower(xstrdup(domain));
    for (char *p = dir; *p != '\0'; p++)
        if (*p == '*') *p = '%';
    return dir;
}

const char *address_account_invalid(const char *local, const char *domain)
{
    if (!address_localpart_valid(local))
        return "invalid local part (1-64 of letters, digits and . _ + = -; no leading, trailing"
               " or double dot)";
    if (!address_domain_valid(domain, true)) return "invalid domain name";
    return NULL;
}
