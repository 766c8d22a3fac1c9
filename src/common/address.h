/* address.h - mail addresses, domain names and the names Alkaid accepts for accounts
 *
 * SECURITY: an account's local part and a domain name become directory names under
 * mail/, so the rules here are what keeps a name from reaching outside the spool:
 * no '/', '\\', NUL, control characters, leading dot or "..".
 */
#ifndef ALKAID_ADDRESS_H
#define ALKAID_ADDRESS_H

#include <stdbool.h>
#include <stddef.h>

#define ADDRESS_MAX_LOCALPART 64
#define ADDRESS_MAX_DOMAIN    253
#define ADDRESS_MAX           320

/* Splits "local@domain" at the last '@' into newly allocated, lower-cased parts.
 * 0, or -1 if there is no '@' or either side is empty. */
int address_split(const char *address, char **local_r, char **domain_r);
/* A domain name we accept for a local domain: letters, digits, '-', '.' labels of 1-63,
 * total up to 253; with allow_wildcard also '*' (e.g. "*.example.com", "*example.com"). */
bool address_domain_valid(const char *domain, bool allow_wildcard);
/* A local part we accept for an account or alias: 1-64 of [A-Za-z0-9._+=-], not starting
 * or ending with '.', no "..". */
bool address_localpart_valid(const char *local);
/* Why local@domain cannot be an account's address (both checks above, with the domain
 * allowed a wildcard), or NULL if it can. */
const char *address_account_invalid(const char *local, const char *domain);
/* Case-insensitive glob match of a domain against a pattern where '*' matches any run of
 * characters (including dots). */
bool address_domain_match(const char *pattern, const char *domain);
/* The directory name of a domain under mail/: the lower-cased name with each '*'
 * replaced by '%' (so it is a valid file name everywhere). xmalloc'ed. */
char *address_domain_dir(const char *domain);
/* Lower-cases s in place (ASCII only); returns s. */
char *address_lower(char *s);

#endif
