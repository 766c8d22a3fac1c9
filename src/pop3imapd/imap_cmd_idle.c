/* imap_cmd_idle.c - IDLE (RFC 2177)
 *
 * "+ idling", then the updates of the selected folder are sent as they happen (the
 * folder is looked at every IMAP_IDLE_POLL_MS, so a delivery shows within a second)
 * until the client sends DONE.
 *
 * SECURITY: the wait ends at the autologout time ([IMAP] Timeout) and when the service
 * stops; the only input accepted is one bounded line.
 */
#include <strings.h>

#include "imap_session.h"

void imap_cmd_idle(struct imap_session *s, const struct imap_command *cmd)
{
    if (cmd->nargs) {
        imap_bad(s, "IDLE takes no arguments");
        return;
    }
    imap_send(s, "+ idling");
    int64_t end = conn_now_ms() + (int64_t)s->cfg->imap.timeout * 1000;
    for (;;) {
        if (conn_flush(s->conn, conn_now_ms() + 60000) != CONN_OK) {
            s->state = IMAP_STATE_LOGOUT;
            return;
        }
        int64_t now = conn_now_ms();
        if (now >= end) {
            imap_send(s, "* BYE Autologout; idle for too long");
            s->state = IMAP_STATE_LOGOUT;
            imap_no(s, "IDLE ended by autologout");
            return;
        }
        int64_t slice = now + IMAP_IDLE_POLL_MS < end ? now + IMAP_IDLE_POLL_MS : end;
        enum conn_status st = conn_fill_idle(s->conn, slice);
        if (st == CONN_TIMEOUT) {
            if (s->state == IMAP_STATE_SELECTED) imap_send_updates(s, true);
            continue;
        }
        if (st != CONN_OK) {
            if (st == CONN_STOPPED) imap_send(s, "* BYE Server shutting down");
            s->state = IMAP_STATE_LOGOUT;
            imap_no(s, "IDLE interrupted");
            return;
        }
        struct sbuf line = SBUF_INIT(64);
        st = conn_read_line(s->conn, &line, 64, conn_now_ms() + 60000);
        bool done = st == CONN_OK && strcasecmp(sbuf_cstr(&line), "DONE") == 0;
        sbuf_free(&line);
        if (done) {
            imap_ok(s, "IDLE terminated");
        } else if (st == CONN_OK || st == CONN_TOOLONG) {
            imap_bad(s, "Expected DONE");
        } else {
            s->state = IMAP_STATE_LOGOUT;
            imap_no(s, "IDLE interrupted");
        }
        return;
    }
}
