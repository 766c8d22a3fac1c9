/* smtp_etrn.c - ETRN (RFC 1985): a site asks for the mail queued for its domain
 *
 * "ETRN domain" starts the delivery of what waits in mail/FORWARD/ for an ETRN queue
 * domain of the store (domain type 'etrn'); "ETRN @domain" does the same for the domain
 * and its subdomains. The mail then goes by MX as usual (queue_etrn()). "#queue" names
 * are not supported (458).
 *
 * SECURITY: only clients that may relay (RelayIPs, or authenticated) may ask, so a
 * stranger cannot make this server connect out at will; the argument is checked as a
 * domain name before anything is looked up.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "address.h"
#include "log.h"
#include "queue.h"
#include "smtp_session.h"
#include "smtpd.h"

/* 1 if request names an ETRN queue domain here (for "@d": d or one under it), 0 if not,
 * -1 if the store did not answer. */
static int etrn_known(const char *domain, bool subdomains)
{
    if (!subdomains) {
        struct store_domain *d = NULL;
        enum store_result r = store_domain_find(smtpd.store, domain, &d);
        int known = r == STORE_OK && d != NULL && d->type == DOMAIN_ETRN &&
                    strcasecmp(d->name, domain) == 0;
        store_domain_free(&d);
        return r == STORE_TEMPFAIL ? -1 : known;
    }
    struct store_domain **v = NULL;
    size_t n = 0;
    if (store_domain_list(smtpd.store, &v, &n) != STORE_OK) return -1;
    int known = 0;
    size_t dlen = strlen(domain);
    for (size_t i = 0; i < n && !known; i++) {
        const char *name = v[i]->name;
        size_t nlen = strlen(name);
        if (v[i]->type != DOMAIN_ETRN) continue;
        known = strcasecmp(name, domain) == 0 || (nlen > dlen && name[nlen - dlen - 1] == '.' &&
                                                  strcasecmp(name + nlen - dlen, domain) == 0);
    }
    store_domain_list_free(&v, n);
    return known;
}

void smtp_cmd_etrn(struct smtp_session *s, const char *arg)
{
    if (s->state == SMTP_STATE_INIT) {
        smtp_reply(s, "503 5.5.1 Error: send HELO/EHLO first");
        return;
    }
    if (s->state == SMTP_STATE_MAIL || s->state == SMTP_STATE_RCPT) {
        smtp_reply(s, "503 5.5.1 Error: ETRN not allowed during a mail transaction");
        return;
    }
    if (*arg == '\0' || strchr(arg, ' ') != NULL) {
        smtp_reply(s, "501 5.5.4 Syntax: ETRN domain | @domain");
        s->bad_commands++;
        return;
    }
    if (arg[0] == '#') {
        smtp_reply(s,
                   "458 4.5.0 Unable to queue messages for node %.255s: queue names are not "
                   "supported",
                   arg);
        return;
    }
    bool subdomains = arg[0] == '@';
    const char *domain = subdomains ? arg + 1 : arg;
    if (strlen(domain) > 255 || !address_domain_valid(domain, false)) {
        smtp_reply(s, "501 5.5.4 Syntax: ETRN domain | @domain (not a domain name)");
        s->bad_commands++;
        return;
    }
    if (s->auth_user == NULL && !s->relay_client) {
        log_line(LOG_SMTP, s->ip, "ETRN %s refused: not a RelayIPs client, not authenticated", arg);
        smtp_reply(s, "459 4.7.1 Node %s not allowed: ETRN needs AUTH or a relay address", arg);
        return;
    }
    int known = etrn_known(domain, subdomains);
    if (known < 0) {
        smtp_reply(s, "458 4.3.0 Unable to queue messages for node %s: temporary lookup failure",
                   arg);
        return;
    }
    if (!known) {
        smtp_reply(s, "458 4.1.2 Unable to queue messages for node %s: not an ETRN domain here",
                   arg);
        return;
    }
    int n = queue_etrn(arg);
    if (n < 0)
        smtp_reply(s, "458 4.3.0 Unable to queue messages for node %s", arg);
    else if (n == 0)
        smtp_reply(s, "251 2.0.0 OK, no messages waiting for node %s", arg);
    else
        smtp_reply(s, "250 2.0.0 Queuing for node %s started", arg);
}
