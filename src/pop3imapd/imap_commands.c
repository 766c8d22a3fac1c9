/* imap_commands.c - the IMAP command registry and the capability list
 *
 * One table: command name -> handler, the states it is allowed in, and whether it may
 * follow UID or must hold back EXPUNGE responses. The handlers live in imap_cmd_*.c.
 *
 * SECURITY: a command runs only in the states listed here (imap_session.c checks);
 * LOGIN and AUTHENTICATE only before authentication.
 */
#include <string.h>
#include <strings.h>

#include "imap_session.h"
#include "sasl.h"

#define ANY      (IMAP_STATE_NOT_AUTH | IMAP_STATE_AUTH | IMAP_STATE_SELECTED)
#define AUTHED   (IMAP_STATE_AUTH | IMAP_STATE_SELECTED)
#define SELECTED IMAP_STATE_SELECTED

static const struct imap_cmd_def commands[] = {
    {"CAPABILITY", ANY, 0, imap_cmd_capability},
    {"NOOP", ANY, 0, imap_cmd_noop},
    {"LOGOUT", ANY, 0, imap_cmd_logout},
    {"ID", ANY, 0, imap_cmd_id},
    {"STARTTLS", IMAP_STATE_NOT_AUTH, 0, imap_cmd_starttls},
    {"LOGIN", IMAP_STATE_NOT_AUTH, 0, imap_cmd_login},
    {"AUTHENTICATE", IMAP_STATE_NOT_AUTH, 0, imap_cmd_authenticate},
    {"ENABLE", AUTHED, 0, imap_cmd_enable},
    {"NAMESPACE", AUTHED, 0, imap_cmd_namespace},
    {"SELECT", AUTHED, 0, imap_cmd_select},
    {"EXAMINE", AUTHED, 0, imap_cmd_select},
    {"CREATE", AUTHED, 0, imap_cmd_create},
    {"DELETE", AUTHED, 0, imap_cmd_delete},
    {"RENAME", AUTHED, 0, imap_cmd_rename},
    {"SUBSCRIBE", AUTHED, 0, imap_cmd_subscribe},
    {"UNSUBSCRIBE", AUTHED, 0, imap_cmd_subscribe},
    {"LIST", AUTHED, 0, imap_cmd_list},
    {"LSUB", AUTHED, 0, imap_cmd_list},
    {"STATUS", AUTHED, 0, imap_cmd_status},
    {"APPEND", AUTHED, 0, imap_cmd_append},
    {"IDLE", AUTHED, 0, imap_cmd_idle},
    {"CHECK", SELECTED, 0, imap_cmd_check},
    {"CLOSE", SELECTED, 0, imap_cmd_close},
    {"UNSELECT", SELECTED, 0, imap_cmd_close},
    {"EXPUNGE", SELECTED, IMAP_CMD_UID, imap_cmd_expunge},
    {"SEARCH", SELECTED, IMAP_CMD_UID | IMAP_CMD_NO_EXPUNGE, imap_cmd_search},
    {"FETCH", SELECTED, IMAP_CMD_UID | IMAP_CMD_NO_EXPUNGE, imap_cmd_fetch},
    {"STORE", SELECTED, IMAP_CMD_UID | IMAP_CMD_NO_EXPUNGE, imap_cmd_store},
    {"COPY", SELECTED, IMAP_CMD_UID, imap_cmd_copy},
    {"MOVE", SELECTED, IMAP_CMD_UID, imap_cmd_copy},
};

const struct imap_cmd_def *imap_command_find(const char *name)
{
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        if (strcasecmp(commands[i].name, name) == 0) return &commands[i];
    return NULL;
}

void imap_capabilities(struct imap_session *s, struct sbuf *out)
{
    sbuf_appends(out, "IMAP4rev1 SASL-IR LITERAL+ ID ENABLE IDLE NAMESPACE UIDPLUS MOVE "
                      "SPECIAL-USE CONDSTORE CHILDREN UNSELECT");
    if (s->state != IMAP_STATE_NOT_AUTH) return;
    bool tls = conn_is_tls(s->conn);
    if (!tls) {
        SSL_CTX *ctx = server_get_tls(s->base->server);
        if (ctx) sbuf_appends(out, " STARTTLS");
        SSL_CTX_free(ctx);
    }
    if (tls || s->cfg->imap.allow_plaintext_auth) {
        const char *list = sasl_mech_list();
        while (*list) {
            size_t n = strcspn(list, " ");
            sbuf_printf(out, " AUTH=%.*s", (int)n, list);
            list += n;
            while (*list == ' ')
                list++;
        }
    } else {
        sbuf_appends(out, " LOGINDISABLED");
    }
}
