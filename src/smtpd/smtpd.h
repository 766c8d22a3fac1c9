/* smtpd.h - what the parts of alkaid-smtpd share
 *
 * One struct smtpd per process: the account store, the SMTP server (ports 25, 587,
 * 465) and the counters that ctl STATUS reports.
 *
 * SECURITY: nothing here is client-controlled; see the session files.
 */
#ifndef ALKAID_SMTPD_H
#define ALKAID_SMTPD_H

#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "sbuf.h"
#include "server.h"
#include "store.h"

enum smtp_port_kind {
    SMTP_PORT_MX = 0,         /* 25: incoming mail; relay only if authenticated or listed */
    SMTP_PORT_SUBMISSION = 1, /* 587: AUTH required */
    SMTP_PORT_SMTPS = 2,      /* 465: implicit TLS, AUTH required */
};

struct smtpd_counters {
    uint64_t messages_in;       /* accepted (250) messages */
    uint64_t messages_rejected; /* refused at end of data */
    uint64_t rcpts_local;       /* local mailbox copies written */
    uint64_t rcpts_remote;      /* remote recipients queued */
    uint64_t auth_ok, auth_failed;
};

struct smtpd {
    struct store *store;
    struct server *server;
    struct smtpd_counters counters;
    int64_t space_checked_ms; /* disk-space monitor cache */
    bool space_low;
};

extern struct smtpd smtpd;

/* Adds n to a counter from any thread. */
#define SMTPD_COUNT(field, n) __atomic_fetch_add(&smtpd.counters.field, (n), __ATOMIC_RELAXED)

/* Today's counters (local time; they start again at midnight), for ctl STATUS. */
enum smtpd_today { TODAY_MESSAGES_IN, TODAY_MESSAGES_OUT, TODAY_LOCAL_DELIVERIES, TODAY_N };
void smtpd_today_add(enum smtpd_today which, uint64_t n);
/* Appends ,"today":{"date":"YYYY-MM-DD","messages_in":..,"messages_out":..,
 * "local_deliveries":..}. */
void smtpd_today_status(struct sbuf *json);

/* True when free space under [Directories] Temp or Mail is below [SMTP] MinFreeSpace
 * (checked at most once a second). */
bool smtpd_disk_space_low(const struct alkaid_config *cfg);

#endif
