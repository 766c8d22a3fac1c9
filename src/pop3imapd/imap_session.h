/* imap_session.h - one IMAP4rev1 connection, greeting to LOGOUT
 *
 * The session reads commands through imap_parser.c and dispatches them through the
 * command registry (imap_commands.c: name -> handler, with the states a command is
 * allowed in). Each command lives in its own file, imap_cmd_<name>.c, and ends by
 * calling exactly one of imap_ok() / imap_no() / imap_bad(), which record the tagged
 * result; the dispatcher then sends the mailbox updates RFC 3501 allows at that moment
 * (EXISTS, RECENT, EXPUNGE, FETCH FLAGS from other sessions and deliveries) and the
 * tagged response.
 *
 * Responses: imap_send() writes a response line (untagged "* ..." or a continuation
 * "+ ...") built from a format, logging it; imap_write() writes raw octets (message data
 * inside a FETCH response) without logging. Strings that come from messages or clients
 * are written with imap_write_string() / imap_write_astring(), which choose a quoted
 * string or a literal, so no value can break the response syntax.
 *
 * SECURITY: every byte read here is from the network. Limits are enforced by the parser
 * before anything is allocated; commands are checked against the session state before
 * they run; LOGIN/AUTHENTICATE are refused before TLS unless allowed, and their
 * arguments are never logged; a mailbox name is validated (folder_name_valid()) before
 * it becomes a path.
 */
#ifndef ALKAID_IMAP_SESSION_H
#define ALKAID_IMAP_SESSION_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "authfail.h"
#include "config.h"
#include "conn.h"
#include "folder.h"
#include "imap_parser.h"
#include "sbuf.h"
#include "server.h"
#include "store.h"

#define IMAP_MAX_LINE            (64 * 1024) /* command text outside literals */
#define IMAP_MAX_LITERAL_PREAUTH 8192        /* a literal before login */
#define IMAP_MAX_LITERAL         (64 * 1024) /* a literal after login (APPEND's message aside) */
#define IMAP_MAX_DEPTH           16
#define IMAP_MAX_ARGS            10000
#define IMAP_MAX_BAD_COMMANDS    20  /* in a row */
#define IMAP_IDLE_POLL_MS        300 /* how often IDLE looks for changes */
#define IMAP_SASL_LINE_MAX       16384

enum imap_state {
    IMAP_STATE_NOT_AUTH = 1 << 0,
    IMAP_STATE_AUTH = 1 << 1,
    IMAP_STATE_SELECTED = 1 << 2,
    IMAP_STATE_LOGOUT = 1 << 3,
};

enum imap_port_kind {
    IMAP_PORT_PLAIN = 0, /* 143: STARTTLS */
    IMAP_PORT_TLS = 1,   /* 993: implicit TLS */
};

struct imap_user_count;

/* What every IMAP session of the process shares (owned by imap_server.c). */
struct imap_context {
    struct store *store;
    struct server *server;
    /* counters for ctl STATUS (updated with __atomic builtins) */
    uint64_t logins, auth_failures, commands, appended, expunged, fetched;
    /* sessions per user ([IMAP] MaxSessionsPerUser), guarded by users_lock */
    pthread_mutex_t users_lock;
    struct imap_user_count *users;
};

struct imap_session {
    struct session *base;
    struct conn *conn;
    struct imap_context *ctx;
    const struct alkaid_config *cfg;
    const char *ip;
    enum imap_state state;
    struct imap_parser *parser;
    struct authfail_attempt af; /* the authentication attempt in progress */
    unsigned bad_commands;

    /* after login */
    char *user;        /* the authenticated address, lower-case */
    char *mailbox_dir; /* mail/<domain>/<user> */

    /* the selected folder */
    char *selected; /* its name, or NULL */
    struct folder *folder;
    struct folder_view view;
    bool readonly;             /* EXAMINE */
    bool condstore;            /* CONDSTORE enabled: FETCH responses carry MODSEQ */
    size_t keywords_announced; /* keywords the client has been told of (FLAGS) */

    /* the command in progress */
    const struct imap_command *cmd;
    const char *result; /* "OK", "NO" or "BAD", set by imap_ok/no/bad */
    bool tagged_sent;   /* the handler sent its tagged response itself (STARTTLS) */
    struct sbuf result_text;
    bool allow_expunge; /* whether EXPUNGE responses may be sent at the end (RFC 3501
                           7.4.1: not for FETCH, STORE, SEARCH without UID) */
    uint32_t *reported; /* UIDs whose flags this command already reported (or that
                           .SILENT asked not to), left out of the updates */
    size_t nreported, reported_cap;

    /* APPEND's message literal, streamed to a temporary file */
    int append_fd;
    char *append_path;
};

/* The handler for server.c (one session per thread). */
void imap_session_handler(struct session *session);

/* ---- responses ---- */
void imap_send(struct imap_session *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void imap_write(struct imap_session *s, const void *data, size_t len);
void imap_writes(struct imap_session *s, const char *str);
/* A string as an IMAP quoted string if it is short 7-bit text without CR/LF/NUL/"\",
 * otherwise as a literal; NULL as NIL. */
void imap_write_string(struct imap_session *s, const char *str, size_t len);
void imap_write_nstring(struct imap_session *s, const char *str);
/* The same, appended to a buffer (for responses built in memory). */
void imap_sbuf_string(struct sbuf *out, const char *str, size_t len);
/* A mailbox name as an astring (quoted when it is not an atom). */
void imap_sbuf_astring(struct sbuf *out, const char *str);

/* The tagged result of the current command (exactly one per command). text may hold a
 * response code: imap_no(s, "[TRYCREATE] No such mailbox"). */
void imap_ok(struct imap_session *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void imap_no(struct imap_session *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void imap_bad(struct imap_session *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Marks uid's flags as already reported by this command. */
void imap_reported(struct imap_session *s, uint32_t uid);
/* Sends the pending mailbox updates now (EXISTS/RECENT/FETCH, and EXPUNGE when allowed). */
void imap_send_updates(struct imap_session *s, bool allow_expunge);
/* Writes "FLAGS (...)" for msg (with \Recent if the view has it) to out. */
void imap_sbuf_flags(struct imap_session *s, const struct folder_msg *msg, struct sbuf *out);
/* Sends "* FLAGS (...)" and the PERMANENTFLAGS code for the selected folder, and notes
 * how many keywords the client now knows (RFC 3501 7.2.6: sent again when they change). */
void imap_send_flags(struct imap_session *s);
/* Parses a flag list argument ("(\Seen $Forwarded)" or a single flag atom) into system
 * flags and keyword bits of the selected folder (adding keywords as needed). 0, or -1
 * after replying BAD/NO. */
int imap_parse_flags(struct imap_session *s, const struct imap_arg *arg, uint32_t *flags_r,
                     uint64_t *keywords_r);

/* ---- the selected folder ---- */

/* The UIDs a sequence set names in the view (message sequence numbers, or UIDs when
 * uid is true), in ascending order; '*' is the last message (or the highest UID). A
 * sequence number past the end makes the command BAD (RFC 3501 9: seq-number). 0, or
 * -1 after replying BAD. *uids_r is xmalloc'ed (may be NULL with *n_r 0). */
int imap_seqset_uids(struct imap_session *s, const char *set, bool uid, uint32_t **uids_r,
                     size_t *n_r);
/* The mailbox name of an argument, checked with folder_name_valid() ("inbox" in any case
 * becomes "INBOX"); NULL after replying BAD/NO. xmalloc'ed. */
char *imap_mailbox_arg(struct imap_session *s, const struct imap_arg *arg);
/* Replies NO for a folder operation that failed, with the RFC 5530 code that fits. */
void imap_folder_error(struct imap_session *s, enum folder_result r, const char *err,
                       const char *name);
/* Closes the selected folder (CLOSE, UNSELECT, SELECT of another, LOGOUT). */
void imap_unselect(struct imap_session *s);

/* ---- the command registry (imap_commands.c) ---- */

enum imap_cmd_flags {
    IMAP_CMD_UID = 1 << 0,        /* may follow "UID" */
    IMAP_CMD_NO_EXPUNGE = 1 << 1, /* no EXPUNGE responses at its end unless UID (FETCH,
                                     STORE, SEARCH) */
};

struct imap_cmd_def {
    const char *name;
    unsigned states; /* enum imap_state bits in which it is allowed */
    unsigned flags;
    void (*run)(struct imap_session *s, const struct imap_command *cmd);
};

const struct imap_cmd_def *imap_command_find(const char *name);
/* The CAPABILITY list for this session's state (without "CAPABILITY" itself). */
void imap_capabilities(struct imap_session *s, struct sbuf *out);

/* The handlers (one file each). */
void imap_cmd_capability(struct imap_session *s, const struct imap_command *cmd);
void imap_cmd_noop(struct imap_session *s, const struct imap_command *cmd);
void imap_cmd_logout(struct imap_session *s, const struct imap_command *cmd);
void imap_cmd_starttls(struct imap_session *s, const struct imap_command *cmd);
void imap_cmd_login(struct imap_session *s, const struct imap_command *cmd);
void imap_cmd_authenticate(struct imap_session *s, const struct imap_command *cmd);
void imap_cmd_id(struct imap_session *s, const struct imap_command *cmd);
void imap_cmd_enable(struct imap_session *s, const struct imap_command *cmd);
void imap_cmd_namespace(struct imap_session *s, const struct imap_command *cmd);
void imap_cmd_select(struct imap_session *s, const struct imap_command *cmd); /* + EXAMINE */
void imap_cmd_create(struct imap_session *s, const struct imap_command *cmd);
void imap_cmd_delete(struct imap_session *s, const struct imap_command *cmd);
void imap_cmd_rename(struct imap_session *s, const struct imap_command *cmd);
void imap_cmd_subscribe(struct imap_session *s, const struct imap_command *cmd); /* + UNSUB */
void imap_cmd_list(struct imap_session *s, const struct imap_command *cmd);      /* + LSUB */
void imap_cmd_status(struct imap_session *s, const struct imap_command *cmd);
void imap_cmd_append(struct imap_session *s, const struct imap_command *cmd);
void imap_cmd_check(struct imap_session *s, const struct imap_command *cmd);
void imap_cmd_close(struct imap_session *s, const struct imap_command *cmd);   /* + UNSELECT */
void imap_cmd_expunge(struct imap_session *s, const struct imap_command *cmd); /* + UID EXPUNGE */
void imap_cmd_search(struct imap_session *s, const struct imap_command *cmd);
void imap_cmd_fetch(struct imap_session *s, const struct imap_command *cmd);
void imap_cmd_store(struct imap_session *s, const struct imap_command *cmd);
void imap_cmd_copy(struct imap_session *s, const struct imap_command *cmd); /* + MOVE */
void imap_cmd_idle(struct imap_session *s, const struct imap_command *cmd);

#endif
