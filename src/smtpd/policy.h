/* policy.h - who may relay
 *
 * [SMTP] RelayIPs is a list (spaces or commas) of patterns: an address with '*'
 * wildcards ("192.168.1.*", "10.*", "2001:db8:*"), or a network in CIDR form
 * ("10.0.0.0/8", "2001:db8::/32").
 *
 * SECURITY: an unparsable pattern matches nothing.
 */
#ifndef ALKAID_POLICY_H
#define ALKAID_POLICY_H

#include <stdbool.h>

bool policy_ip_listed(const char *patterns, const char *ip);

#endif
