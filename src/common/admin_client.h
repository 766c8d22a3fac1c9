/* admin_client.h - the client side of the remote administration protocol
 *
 * docs/admin-protocol.md: implicit TLS, one command line, one reply line ("+OK <JSON>"
 * or "-ERR <CODE> <text>"). Used by alkaid-admin and alkaid-user --remote.
 *
 *     struct admin_client *ac = admin_connect(&opts, &code, err, sizeof(err));
 *     const char *argv[] = {"DOMAIN", "ADD", "example.com"};
 *     struct admin_reply r;
 *     if (admin_command(ac, argv, 3, &r, err, sizeof(err)) == 0 && r.ok) ...
 *     admin_reply_clear(&r);
 *     admin_close(&ac);
 *
 * SECURITY: the server's certificate is verified against the system CAs or the given CA
 * file, and its name against the host, unless insecure is set. Arguments are quoted by
 * admin_quote(), which refuses control characters (CR and LF would start a second
 * command). Text from the server is printed through admin_fputs_safe(), which escapes
 * control characters so that a hostile server cannot drive the terminal.
 */
#ifndef ALKAID_ADMIN_CLIENT_H
#define ALKAID_ADMIN_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "json.h"
#include "sbuf.h"

#define ADMIN_DEFAULT_PORT 32000
#define ADMIN_LINE_MAX     8192        /* a command line, CRLF included (the server's limit) */
#define ADMIN_REPLY_MAX    (64u << 20) /* a reply line we accept */

/* Exit codes shared by alkaid-admin and alkaid-user --remote. */
#define ADMIN_EXIT_OK       0
#define ADMIN_EXIT_REFUSED  1  /* NOTFOUND, EXISTS, INVALID, DENIED, ... */
#define ADMIN_EXIT_USAGE    2  /* also SYNTAX and LINE */
#define ADMIN_EXIT_AUTH     3  /* AUTH, LOCKED, or DENIED at LOGIN */
#define ADMIN_EXIT_CONNECT  69 /* cannot connect, TLS failure */
#define ADMIN_EXIT_TEMPFAIL 75 /* BUSY, UNAVAILABLE, TIMEOUT, INTERNAL, connection lost */

struct admin_options {
    const char *host;
    int port;
    const char *ca_file; /* NULL: the system's CAs */
    bool insecure;       /* do not verify the certificate */
    int timeout_s;       /* for connecting and for each reply */
};

struct admin_reply {
    bool ok;
    char code[16];     /* -ERR: the code */
    char *text;        /* +OK: the JSON text; -ERR: the text after the code */
    struct json *json; /* +OK: the parsed value */
};

struct admin_client;

/* Connects, starts TLS, verifies the certificate and reads the greeting. NULL with a
 * reason in error and an exit code (ADMIN_EXIT_CONNECT, or the greeting's -ERR) on
 * failure. Sets SIGPIPE to be ignored: it is meant for client programs. */
struct admin_client *admin_connect(const struct admin_options *o, int *exit_r, char *error,
                                   size_t error_size);
/* The greeting's JSON (an object, or NULL). */
const struct json *admin_greeting(const struct admin_client *ac);
/* Sends QUIT (without waiting long) and frees. */
void admin_close(struct admin_client **ac);

/* Appends arg to out as an atom or a quoted string. -1 (out unchanged) with *error_r when
 * it contains a control character other than TAB. */
int admin_quote(struct sbuf *out, const char *arg, const char **error_r);
/* The command line for args (without CRLF) into out. -1 with a reason in error when an
 * argument cannot be sent or the line would be too long. */
int admin_format(struct sbuf *out, const char *const *args, size_t nargs, char *error,
                 size_t error_size);
/* Sends one command and reads its reply. 0 with *r filled (ok or not), or -1 with a
 * reason in error (the argument cannot be sent: ADMIN_EXIT_USAGE; the connection failed
 * or the reply is not a valid reply: ADMIN_EXIT_TEMPFAIL) in *exit_r. */
int admin_command(struct admin_client *ac, const char *const *args, size_t nargs,
                  struct admin_reply *r, int *exit_r, char *error, size_t error_size);
/* LOGIN user password: 0, or the exit code after setting error (the server's text). */
int admin_login(struct admin_client *ac, const char *user, const char *password, char *error,
                size_t error_size);
void admin_reply_clear(struct admin_reply *r);

/* The exit code for an -ERR code. */
int admin_exit_code(const char *code);
/* Writes s with control characters (C0, DEL, C1) and bytes that are not well-formed
 * UTF-8 escaped as \xNN. */
void admin_fputs_safe(FILE *f, const char *s);
/* Prints a DOMAIN LIST reply as alkaid-user domain list does on the machine: a line per
 * domain with its account count, catch-all (or -) and type. */
void admin_print_domain_list(FILE *f, const struct json *reply);
/* A time from a reply (seconds since the epoch) as local "YYYY-MM-DD HH:MM:SS", or "now"
 * for 0 and below. Returns buf or a constant. */
const char *admin_time_str(int64_t t, char *buf, size_t size);
/* A request: w1, w2 (may be NULL), args[0..nargs), last (may be NULL). xcalloc'ed (free
 * the array, not the words); *n_r is its length. */
const char **admin_words(const char *w1, const char *w2, char *const *args, size_t nargs,
                         const char *last, size_t *n_r);
/* args[0..n) joined with spaces, for messages. xmalloc'ed. */
char *admin_joined(char *const *args, size_t n);
/* The strings of a JSON array, space-separated, or "none". */
void admin_print_list(FILE *f, const struct json *a);
/* Prints a USER LIST reply as alkaid-user list does on the machine. */
void admin_print_user_list(FILE *f, const struct json *reply);
/* Prints a USER SHOW reply (address: what was asked for, if the reply lacks it). */
void admin_print_user_show(FILE *f, const struct json *reply, const char *address);
/* Prints a QUEUE LIST reply: a line per message, its recipients' last errors, a count. */
void admin_print_queue_list(FILE *f, const struct json *reply);
/* Prints a QUEUE SHOW reply (id: what was asked for, if the reply lacks it). */
void admin_print_queue_show(FILE *f, const struct json *reply, const char *id);

#endif
