/* policy.c - who may relay
 *
 * SECURITY: patterns come from the administrator, the address from the socket layer
 * (never from the client's words); both are parsed with inet_pton before comparison.
 */
#include "policy.h"

#include <arpa/inet.h>
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool cidr_match(const char *pattern, const char *ip)
{
    char net[64];
    const char *slash = strchr(pattern, '/');
    size_t nlen = (size_t)(slash - pattern);
    if (nlen == 0 || nlen >= sizeof(net)) return false;
    memcpy(net, pattern, nlen);
    net[nlen] = '\0';
    char *end;
    long bits = strtol(slash + 1, &end, 10);
    if (*end != '\0' || end == slash + 1 || bits < 0) return false;

    unsigned char a[16], b[16];
    size_t len;
    if (inet_pton(AF_INET, net, a) == 1 && inet_pton(AF_INET, ip, b) == 1) {
        len = 4;
    } else if (inet_pton(AF_INET6, net, a) == 1 && inet_pton(AF_INET6, ip, b) == 1) {
        len = 16;
    } else {
        return false;
    }
    if ((size_t)bits > len * 8) return false;
    size_t full = (size_t)bits / 8;
    if (memcmp(a, b, full) != 0) return false;
    unsigned rest = (unsigned)bits % 8;
    if (rest == 0) return true;
    unsigned char mask = (unsigned char)(0xff << (8 - rest));
    return (a[full] & mask) == (b[full] & mask);
}

bool policy_ip_listed(const char *patterns, const char *ip)
{
    if (patterns == NULL || ip == NULL) return false;
    const char *p = patterns;
    while (*p) {
        while (*p == ' ' || *p == ',' || *p == '\t')
            p++;
        size_t n = strcspn(p, " ,\t");
        if (n > 0 && n < 80) {
            char pat[80];
            memcpy(pat, p, n);
            pat[n] = '\0';
            if (strchr(pat, '/')) {
                if (cidr_match(pat, ip)) return true;
            } else if (fnmatch(pat, ip, FNM_CASEFOLD) == 0) {
                return true;
            }
        }
        p += n;
    }
    return false;
}
