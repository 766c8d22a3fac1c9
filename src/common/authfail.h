/* authfail.h - slowing down and then refusing password guessing, per client address
 *
 * Every authentication attempt is counted when it begins (authfail_begin()), before any
 * password is checked, and only a successful attempt takes itself back off the count
 * (authfail_success()). So at most lock_after passwords from one address are ever
 * checked within the window, however many connections the client opens in parallel or
 * holds open mid-exchange, and logging in to one's own account does not wipe the count
 * of guesses at other accounts. After delay_after counted attempts each failure is
 * answered only after a growing delay.
 *
 * The table is shared by the services of a root (authfail_attach(): a small file under
 * run/, mapped into each process, access serialised with flock), so an address locked
 * out of POP3 is locked out of SMTP too. Without it, each process has its own table.
 *
 * SECURITY: the table is bounded (AUTHFAIL_TABLE_SIZE addresses); when it is full the
 * least recently touched unlocked entry is reused, so a flood of addresses can at worst
 * forget old failures, never exhaust memory.
 */
#ifndef ALKAID_AUTHFAIL_H
#define ALKAID_AUTHFAIL_H

/* How many client addresses the table remembers at most. */
#define AUTHFAIL_TABLE_SIZE 4096
/* The longest delay authfail_failure() asks for, in milliseconds. */
#define AUTHFAIL_MAX_DELAY_MS 5000

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

/* An authentication attempt from ip is about to check a password: 0 if it may (it is
 * counted now), otherwise the seconds left in ip's lock-out (nothing is counted). */
unsigned authfail_begin(const char *ip);
/* The attempt failed: how many milliseconds to wait before answering (0 for the first
 * few attempts, growing up to AUTHFAIL_MAX_DELAY_MS). */
unsigned authfail_failure(const char *ip);
/* The attempt succeeded: it no longer counts (other attempts of ip still do). */
void authfail_success(const char *ip);
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
