/* admin_config.c - CONFIG GET and CONFIG SET: alkaid.ini read and rewritten in place
 *
 * GET reads the file with libiniparser, as config.c does, and reports every key of the
 * key table with its value there (or its default). SET checks the value with
 * config_check_value(), rewrites the one setting with admin_ini_rewrite() (every other
 * line, comments included, stays as it was), writes the file through a temporary name
 * and a rename, and then has every running service reload over its ctl socket.
 *
 * SECURITY: values with CR, LF or NUL are refused (they would add lines to the file);
 * values the INI reader could not read back as given (a '"' that needs quoting, a line
 * past iniparser's 1024 octets) are refused too. Rewrites are serialised.
 */
#include <ctype.h>
#include <errno.h>
#include <iniparser.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "admin.h"
#include "ctl.h"
#include "fsutil.h"
#include "log.h"
#include "service.h"
#include "xalloc.h"

#define INI_LINE_MAX 1000 /* iniparser reads lines of up to 1024 octets */

static pthread_mutex_t ini_write_lock = PTHREAD_MUTEX_INITIALIZER;

static const char *const services[] = {"smtpd", "pop3imapd", "controld"};

/* ---- the rewriter ---- */

/* s[0..n) without leading and trailing blanks. */
static void trim(const char **s, size_t *n)
{
    while (*n && (**s == ' ' || **s == '\t')) {
        (*s)++;
        (*n)--;
    }
    while (*n && ((*s)[*n - 1] == ' ' || (*s)[*n - 1] == '\t'))
        (*n)--;
}

static bool same_name(const char *a, size_t an, const char *b)
{
    return strlen(b) == an && strncasecmp(a, b, an) == 0;
}

/* The value as it must be written for iniparser to read it back unchanged: bare, or
 * in double or single quotes. NULL with *error_r if it cannot be. */
static char *encode_value(const char *value, const char **error_r)
{
    size_t n = strlen(value);
    for (size_t i = 0; i < n; i++) {
        if (value[i] == '\r' || value[i] == '\n') {
            *error_r = "a value cannot contain a line break";
            return NULL;
        }
    }
    if (n == 0) return xstrdup("");
    bool quote = strpbrk(value, ";#") != NULL || value[0] == ' ' || value[0] == '\t' ||
                 value[n - 1] == ' ' || value[n - 1] == '\t' || value[0] == '"' ||
                 value[0] == '\'' || value[n - 1] == '\\';
    if (!quote) return xstrdup(value);
    if (strchr(value, '"') == NULL) return xasprintf("\"%s\"", value);
    if (strchr(value, '\'') == NULL) return xasprintf("'%s'", value);
    *error_r = "this value cannot be written to the INI file (it needs quotes but holds both"
               " quote characters)";
    return NULL;
}

int admin_ini_rewrite(const char *in, size_t len, const char *section, const char *key,
                      const char *value, struct sbuf *out, const char **error_r)
{
    if (memchr(in, '\0', len) != NULL) {
        *error_r = "the file holds a NUL octet";
        return -1;
    }
    char *enc = encode_value(value, error_r);
    if (enc == NULL) return -1;
    if (strlen(key) + 1 + strlen(enc) > INI_LINE_MAX) {
        free(enc);
        *error_r = "the value is too long for an INI line";
        return -1;
    }
    const char *eol = "\n";
    const char *first_lf = memchr(in, '\n', len);
    if (first_lf && first_lf > in && first_lf[-1] == '\r') eol = "\r\n";

    size_t base = out->len;
    bool in_target = false, section_seen = false, replaced = false;
    size_t insert_at = 0; /* offset in out after the target section's last setting */
    bool insert_needs_eol = false;
    size_t pos = 0;
    while (pos < len) {
        const char *line = in + pos;
        const char *lf = memchr(line, '\n', len - pos);
        size_t full = lf ? (size_t)(lf - line) + 1 : len - pos; /* with its line end */
        size_t body = lf ? (size_t)(lf - line) : full;
        if (body && line[body - 1] == '\r') body--;
        pos += full;
        const char *t = line;
        size_t tn = body;
        trim(&t, &tn);
        if (tn >= 2 && t[0] == '[' && memchr(t, ']', tn) != NULL) {
            const char *name = t + 1;
            size_t nn = (size_t)((const char *)memchr(t, ']', tn) - name);
            trim(&name, &nn);
            in_target = same_name(name, nn, section) && !section_seen;
            if (in_target) section_seen = true;
            sbuf_append(out, line, full);
            if (in_target) {
                insert_at = out->len;
                insert_needs_eol = lf == NULL;
            }
            continue;
        }
        const char *eq = tn && t[0] != ';' && t[0] != '#' ? memchr(t, '=', tn) : NULL;
        if (in_target && eq != NULL) {
            const char *k = t;
            size_t kn = (size_t)(eq - t);
            trim(&k, &kn);
            if (same_name(k, kn, key)) {
                /* keep what precedes the value ("Key = "), replace the rest */
                const char *v = eq + 1;
                while (v < line + body && (*v == ' ' || *v == '\t'))
                    v++;
                sbuf_append(out, line, (size_t)(v - line));
                sbuf_appends(out, enc);
                sbuf_appends(out, lf ? (line[body] == '\r' ? "\r\n" : "\n") : eol);
                replaced = true;
                insert_at = out->len;
                insert_needs_eol = false;
                continue;
            }
        }
        sbuf_append(out, line, full);
        if (in_target && eq != NULL) {
            insert_at = out->len;
            insert_needs_eol = lf == NULL;
        }
    }
    if (!replaced) {
        struct sbuf add = SBUF_INIT(SBUF_NO_MAX);
        if (section_seen) {
            if (insert_needs_eol) sbuf_appends(&add, eol);
            sbuf_printf(&add, "%s=%s%s", key, enc, eol);
            /* splice add in at insert_at */
            size_t tail = out->len - insert_at;
            char *rest = xmemdup(out->data + insert_at, tail);
            sbuf_truncate(out, insert_at);
            sbuf_append(out, add.data, add.len);
            sbuf_append(out, rest, tail);
            free(rest);
        } else {
            if (out->len > base && out->data[out->len - 1] != '\n') sbuf_appends(out, eol);
            if (out->len > base) sbuf_appends(out, eol);
            sbuf_printf(out, "[%s]%s%s=%s%s", section, eol, key, enc, eol);
        }
        sbuf_free(&add);
    }
    free(enc);
    return 0;
}

/* ---- CONFIG GET ---- */

/* Settings whose values are secrets: logged and shown as ****. */
static bool secret_key(const char *key)
{
    return strcasestr(key, "password") != NULL;
}

static char *ini_key(const char *section, const char *key)
{
    char *k = xasprintf("%s:%s", section, key);
    for (char *p = k; *p; p++)
        *p = (char)tolower((unsigned char)*p);
    return k;
}

void admin_config_get(struct admin_session *s, char **args, size_t nargs)
{
    if (nargs > 4) {
        admin_reply_err(s, "SYNTAX", "CONFIG GET [section [key]]");
        return;
    }
    const char *want_sec = nargs > 2 ? args[2] : NULL;
    const char *want_key = nargs > 3 ? args[3] : NULL;
    const struct alkaid_config *cfg = service_config();
    dictionary *d = iniparser_load(cfg->ini_path);
    if (d == NULL) {
        admin_reply_err(s, "INTERNAL", "%s cannot be read", cfg->ini_path);
        return;
    }
    struct sbuf json = SBUF_INIT(SBUF_NO_MAX);
    sbuf_appends(&json, "{\"settings\":[");
    size_t found = 0;
    for (size_t i = 0; i < config_key_count(); i++) {
        const char *sec, *key, *def;
        if (config_key_at(i, &sec, &key, &def) < 0) break;
        if (want_sec && strcasecmp(want_sec, sec) != 0) continue;
        if (want_key && strcasecmp(want_key, key) != 0) continue;
        char *k = ini_key(sec, key);
        const char *v = iniparser_getstring(d, k, NULL);
        free(k);
        if (found++) sbuf_putc(&json, ',');
        sbuf_appends(&json, "{\"section\":");
        admin_json_string(&json, sec);
        sbuf_appends(&json, ",\"key\":");
        admin_json_string(&json, key);
        sbuf_appends(&json, ",\"value\":");
        const char *shown = v ? v : def;
        admin_json_string(&json, secret_key(key) && *shown ? "****" : shown);
        sbuf_appends(&json, ",\"default\":");
        admin_json_string(&json, def);
        sbuf_putc(&json, '}');
    }
    sbuf_appends(&json, "]}");
    iniparser_freedict(d);
    if (found == 0 && want_key)
        admin_reply_err(s, "NOTFOUND", "[%s] %s: no such setting", want_sec, want_key);
    else if (found == 0)
        admin_reply_err(s, "NOTFOUND", "[%s]: no such section", want_sec);
    else
        admin_reply_ok(s, &json);
    sbuf_free(&json);
}

/* ---- reloading the services ---- */

void admin_reload_services(const struct alkaid_config *cfg, const char *service, struct sbuf *json)
{
    sbuf_putc(json, '{');
    bool first = true;
    for (size_t i = 0; i < sizeof(services) / sizeof(services[0]); i++) {
        if (service && strcmp(service, services[i]) != 0) continue;
        char *path = xasprintf("%s/%s.sock", cfg->run_dir, services[i]);
        struct sbuf reply = SBUF_INIT(65536);
        const char *err = NULL;
        if (ctl_request(path, "RELOAD", &reply, &err) < 0) {
            sbuf_reset(&reply);
            sbuf_appends(&reply, "ERR not running");
        }
        /* one line: the reply's line breaks become spaces */
        size_t n = reply.len;
        while (n && (reply.data[n - 1] == '\n' || reply.data[n - 1] == ' '))
            n--;
        sbuf_truncate(&reply, n);
        for (size_t k = 0; k < reply.len; k++)
            if (reply.data[k] == '\n' || reply.data[k] == '\r') reply.data[k] = ' ';
        if (!first) sbuf_putc(json, ',');
        first = false;
        sbuf_printf(json, "\"%s\":", services[i]);
        admin_json_string(json, sbuf_cstr(&reply));
        sbuf_free(&reply);
        free(path);
    }
    sbuf_putc(json, '}');
}

/* ---- CONFIG SET ---- */

/* Settings that name a program the server runs: set on the machine only, never over the
 * network ("nothing a client sends reaches a shell"). */
static bool program_key(const char *section, const char *key)
{
    return (strcasecmp(section, "Control") == 0 && strcasecmp(key, "WatchdogRestart") == 0) ||
           (strcasecmp(section, "DialUp") == 0 &&
            (strcasecmp(key, "Connect") == 0 || strcasecmp(key, "Disconnect") == 0));
}

/* Whether the whole file as it is now on disk loads (cross-checks between keys, such
 * as [Directories], are only made there). Problems are appended to why. */
static bool ini_loads(const struct alkaid_config *cfg, struct sbuf *why)
{
    struct alkaid_config *c = config_load(cfg->root, why);
    bool ok = c != NULL;
    config_free(&c);
    return ok;
}

void admin_config_set(struct admin_session *s, char **args, size_t nargs)
{
    if (nargs != 5) {
        admin_reply_err(s, "SYNTAX", "CONFIG SET section key value");
        return;
    }
    const struct alkaid_config *cfg = service_config();
    const char *sec = NULL, *key = NULL, *def = NULL;
    for (size_t i = 0; i < config_key_count(); i++) {
        const char *cs, *ck, *cd;
        if (config_key_at(i, &cs, &ck, &cd) < 0) break;
        if (strcasecmp(cs, args[2]) == 0 && strcasecmp(ck, args[3]) == 0) {
            sec = cs;
            key = ck;
            def = cd;
            break;
        }
    }
    (void)def;
    if (sec != NULL && program_key(sec, key)) {
        admin_reply_err(s, "DENIED",
                        "[%s] %s names a program to run: set it in %s on the machine itself", sec,
                        key, cfg->ini_path);
        return;
    }
    if (sec != NULL && config_key_is_path(sec, key)) {
        admin_reply_err(s, "DENIED",
                        "[%s] %s names a file or directory on the server: set it in %s on the"
                        " machine itself",
                        sec, key, cfg->ini_path);
        return;
    }
    if (sec == NULL) {
        admin_reply_err(s, "NOTFOUND", "%s: [%s] %s: no such setting", cfg->ini_path, args[2],
                        args[3]);
        return;
    }
    const char *value = args[4];
    struct sbuf why = SBUF_INIT(4096);
    if (config_check_value(sec, key, value, &why) < 0) {
        admin_reply_err(s, "INVALID", "%s: %s", cfg->ini_path, sbuf_cstr(&why));
        sbuf_free(&why);
        return;
    }
    sbuf_free(&why);

    pthread_mutex_lock(&ini_write_lock);
    size_t len = 0;
    char *old = fs_read_file(cfg->ini_path, ADMIN_INI_MAX, &len);
    struct sbuf text = SBUF_INIT(SBUF_NO_MAX);
    const char *err = NULL;
    int r = -1;
    bool changed = false;
    struct stat sb;
    if (old == NULL) {
        admin_reply_err(s, "INTERNAL", "%s cannot be read: %s", cfg->ini_path, strerror(errno));
    } else if (admin_ini_rewrite(old, len, sec, key, value, &text, &err) < 0) {
        admin_reply_err(s, "INVALID", "%s: [%s] %s: %s", cfg->ini_path, sec, key, err);
    } else if (text.len == len && memcmp(text.data, old, len) == 0) {
        r = 0; /* already so */
    } else if (stat(cfg->ini_path, &sb) < 0 ||
               fs_write_file_atomic(cfg->ini_path, text.data, text.len, sb.st_mode & 07777) < 0) {
        admin_reply_err(s, "INTERNAL", "%s cannot be written: %s", cfg->ini_path, strerror(errno));
    } else {
        r = 0;
        changed = true;
        /* the file as a whole must still load (e.g. [Directories] four separate trees);
         * if not, put the old text back, unless that did not load either */
        struct sbuf load_why = SBUF_INIT(16384);
        if (!ini_loads(cfg, &load_why)) {
            struct sbuf ignored = SBUF_INIT(16384);
            if (fs_write_file_atomic(cfg->ini_path, old, len, sb.st_mode & 07777) == 0 &&
                ini_loads(cfg, &ignored)) {
                admin_reply_err(s, "INVALID", "%s", sbuf_cstr(&load_why)); /* one line */
                r = -1;
            } else if (fs_write_file_atomic(cfg->ini_path, text.data, text.len,
                                            sb.st_mode & 07777) < 0) {
                admin_reply_err(s, "INTERNAL", "%s cannot be written: %s", cfg->ini_path,
                                strerror(errno));
                r = -1;
            }
            sbuf_free(&ignored);
        }
        sbuf_free(&load_why);
    }
    pthread_mutex_unlock(&ini_write_lock);
    free(old);
    sbuf_free(&text);
    if (r < 0) return;
    admin_log_change(s, "CONFIG SET [%s] %s=%s", sec, key, secret_key(key) ? "****" : value);
    struct sbuf json = SBUF_INIT(SBUF_NO_MAX);
    sbuf_printf(&json, "{\"changed\":%s,\"reload\":", changed ? "true" : "false");
    admin_reload_services(cfg, NULL, &json);
    sbuf_putc(&json, '}');
    admin_reply_ok(s, &json);
    sbuf_free(&json);
}
