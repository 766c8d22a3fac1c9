/* authfail.h - slowing down and then refusing password guessing, per client address
 *
 * Shared by every session thread of a service. After delay_after failures from one
 * address each further failure is answered only after a growing delay; after
 * lock_after failures within the window the address is refused authentication for
 * lock_seconds. The table is bounded: when it is full the oldest entry is forgotten.
 *
 * SECURITY: the table's size does not depend on client input beyond its fixed bound.
 */
#ifndef ALKAID_AUTHFAIL_H
#define ALKAID_AUTHFAIL_H

/* How many client addresses the table remembers at most. */
#define AUTHFAIL_TABLE_SIZE 4096
/* The longest delay authfail_failure() asks for, in milliseconds. */
#define AUTHFAIL_MAX_DELAY_MS 5000

/* Configures the policy (callable again on reload). delay_after: failures before delays
 * start; lock_after: failures before the lock-out; lock_seconds: lock-out length and the
 * window in which failures are counted. lock_after 0 or lock_seconds 0 turns the lock-out
 * off (failures are then counted over the default 900 seconds). Until it is called:
 * 3, 10, 900. IPv6 addresses are counted per /64, IPv4-mapped ones as IPv4. */
void authfail_configure(unsigned delay_after, unsigned lock_after, unsigned lock_seconds);
/* 0 if ip may try to authenticate now, otherwise the seconds left in its lock-out. */
unsigned authfail_locked(const char *ip);
/* Records a failure; returns how many milliseconds the caller should wait before it
 * answers (0 for the first few failures, growing up to 5000). */
unsigned authfail_failure(const char *ip);
/* Records a success: forgets ip's failures. */
void authfail_success(const char *ip);
/* Forgets everything (tests). */
void authfail_reset(void);

/* For tests only: while now_ms is not 0, the module's monotonic clock reads now_ms
 * (milliseconds) instead of CLOCK_MONOTONIC; 0 restores the real clock. */
void authfail_test_set_clock(unsigned long long now_ms);
/* For tests only: how many addresses the table holds now. */
unsigned authfail_test_entries(void);

#endif
