/* authfail.h - slowing down and then refusing password guessing, per client address
 *
 * Failed logins are counted per client address within a window; after delay_after of
 * them each further failure is answered only after a growing delay, after lock_after the
 * address is locked out for lock_seconds. A successful login takes nothing away (logging
 * in to one's own account does not clear the guesses at others).
 *
 * So that parallel connections, or exchanges held open at the password prompt, cannot get
 * more guesses checked than lock_after, every attempt takes an in-flight slot of its
 * address before any password is checked (authfail_begin()) and gives it back when it
 * ends: at most lock_after - failures attempts of one address are in flight at once. A
 * further attempt waits (up to AUTHFAIL_WAIT_MS) for a slot instead of being refused, so
 * a burst of correct logins from one address (a webmail front end) is only queued. A slot
 * that is never given back (a crashed process) frees itself after AUTHFAIL_SLOT_MS.
 *
 * The table is shared by the services of a root (authfail_attach(): a small file under
 * run/, mapped into each process, access serialised with flock), so an address locked
 * out of POP3 is locked out of SMTP and IMAP too. Without it, each process has its own.
 *
 * SECURITY: the table is bounded (AUTHFAIL_TABLE_SIZE addresses); when it is full the
 * least recently touched unlocked entry is reused, so a flood of addresses can at worst
 * forget old failures, never exhaust memory.
 */
#ifndef ALKAID_AUTHFAIL_H
#define ALKAID_AUTHFAIL_H

#include <stdint.h>

/* How many client addresses the table remembers at most. */
#define AUTHFAIL_TABLE_SIZE 4096
/* The longest delay authfail_failure() asks for, in milliseconds. */
#define AUTHFAIL_MAX_DELAY_MS 5000
/* Attempts of one address in flight at once, at most (also bounded by lock_after). */
#define AUTHFAIL_MAX_INFLIGHT 16
/* How long an attempt waits for an in-flight slot before it is refused. */
#define AUTHFAIL_WAIT_MS 10000
/* After this long an in-flight slot is considered abandoned. */
#define AUTHFAIL_SLOT_MS 120000

/* One attempt between authfail_begin() and its end. */
struct authfail_attempt {
    char key[48];
    int slot;         /* -1: none held */
    uint64_t expires; /* identifies the slot this attempt holds */
};

/* Configures the policy (callable again on reload). delay_after: attempts before delays
 * start; lock_after: attempts before the lock-out; lock_seconds: lock-out length and the
 * window in which attempts are counted. lock_after 0 or lock_seconds 0 turns the
 * lock-out off (attempts are then counted over the default 900 seconds). Until it is
 * called: 3, 10, 900. IPv6 addresses are counted per /64, IPv4-mapped ones as IPv4. */
void authfail_configure(unsigned delay_after, unsigned lock_after, unsigned lock_seconds);
/* Keeps the table in the file at path, shared with every process that attaches it.
 * 0, or -1 with errno (the process keeps its own table). */
int authfail_attach(const char *path);
void authfail_detach(void);

/* An attempt from ip is about to check a password: 0 once it holds an in-flight slot
 * (it may have waited for one), otherwise the seconds left in ip's lock-out (or 1 if no
 * slot came free in time). a is filled for the calls that end the attempt. */
unsigned authfail_begin(const char *ip, struct authfail_attempt *a);
/* The attempt failed: counts the failure and gives the slot back; returns how many
 * milliseconds to wait before answering (0 for the first few failures, growing up to
 * AUTHFAIL_MAX_DELAY_MS). */
unsigned authfail_failure(struct authfail_attempt *a);
/* The attempt succeeded, or ended without a password being judged (cancelled, a store
 * failure): gives the slot back, counts nothing. */
void authfail_done(struct authfail_attempt *a);
/* 0 if ip is not locked out now, otherwise the seconds left (counts nothing). */
unsigned authfail_locked(const char *ip);
/* Forgets everything (tests). */
void authfail_reset(void);

/* For tests only: while now_ms is not 0, the module's clock reads now_ms (milliseconds)
 * instead of CLOCK_MONOTONIC; 0 restores the real clock. */
void authfail_test_set_clock(unsigned long long now_ms);
/* For tests only: how many addresses the table holds now. */
unsigned authfail_test_entries(void);

#endif
