/* dns.h - DNS lookups through c-ares: raw records with TTLs, and mail routing (MX)
 *
 * A resolver owns a pool of c-ares channels (c-ares 1.18 channels are not thread-safe;
 * each query borrows one) and a cache of answers kept for their TTL (at most an hour;
 * NXDOMAIN and NODATA for 60 s; temporary failures are never cached). Every call is
 * synchronous for the calling thread and bounded by the timeout and tries given at
 * creation.
 *
 * SECURITY: answers come from the network: names are decompressed and checked by
 * c-ares, record data is length-checked before it is read, and a query for a name that
 * is not a valid host name (too long, empty labels, control characters) is refused
 * without being sent.
 */
#ifndef ALKAID_DNS_H
#define ALKAID_DNS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum dns_status {
    DNS_OK = 0,   /* at least one record of the type asked for */
    DNS_NXDOMAIN, /* the name does not exist (permanent) */
    DNS_NODATA,   /* the name exists but has no record of this type (permanent) */
    DNS_TEMPFAIL, /* SERVFAIL, REFUSED, timeout, network error: try again later */
    DNS_BADNAME,  /* the name cannot be asked for (permanent, nothing was sent) */
};

enum dns_type {
    DNS_T_A = 1,
    DNS_T_NS = 2,
    DNS_T_CNAME = 5,
    DNS_T_PTR = 12,
    DNS_T_MX = 15,
    DNS_T_TXT = 16,
    DNS_T_AAAA = 28,
};

struct dns_rr {
    char *name; /* owner name, without the trailing dot */
    enum dns_type type;
    uint32_t ttl;
    uint16_t pref;   /* MX */
    char *target;    /* MX exchange, NS, PTR, CNAME; "" for the root (a null MX) */
    char *text;      /* TXT: the character-strings joined without separator */
    size_t text_len; /* TXT: bytes in text (it may hold NULs; text is NUL-terminated too) */
    char addr[46];   /* A, AAAA: the address as text */
};

struct dns_answer {
    enum dns_status status;
    struct dns_rr *rrs; /* the answer section's records of every type (CNAMEs too) */
    size_t n;
    char error[128]; /* for DNS_TEMPFAIL etc.: "SERVFAIL from 127.0.0.1", "timeout" */
};

struct dns_resolver;

/* servers: "IP[:PORT],IP[:PORT]" (IPv6 as [addr]:port) or NULL / "" for the system's
 * resolvers (/etc/resolv.conf). timeout_ms per try, tries per server (>= 1). NULL with a
 * message in *error_r (static or thread-local storage) on failure. */
struct dns_resolver *dns_resolver_new(const char *servers, int timeout_ms, int tries,
                                      const char **error_r);
void dns_resolver_free(struct dns_resolver **r);
/* Empties the cache. */
void dns_cache_clear(struct dns_resolver *r);

/* One query (no search list, recursion desired). Thread-safe. ans_r is always set
 * (free it with dns_answer_clear()); returns ans_r->status. from_cache (may be NULL)
 * tells whether the answer came from the cache. */
enum dns_status dns_query(struct dns_resolver *r, const char *name, enum dns_type type,
                          struct dns_answer *ans_r, bool *from_cache);
void dns_answer_clear(struct dns_answer *ans);

/* "192.0.2.7" -> "7.2.0.192.in-addr.arpa", "2001:db8::1" -> "1.0.0...ip6.arpa".
 * 0, or -1 if ip is not an address. */
int dns_reverse_name(const char *ip, char *buf, size_t size);

/* "MX", "a", ... -> the type; -1 if unknown. And back. */
int dns_type_from_name(const char *name);
const char *dns_type_name(enum dns_type type);

/* Mail routing for a domain, RFC 5321 5.1 and RFC 7505. */
struct dns_mx_host {
    char *name;
    uint16_t pref;
    char **addrs; /* IPv6 addresses first, then IPv4, as text */
    size_t naddrs;
    enum dns_status addr_status; /* DNS_TEMPFAIL if the address lookups failed for now */
};

struct dns_mx {
    enum dns_status status;
    bool null_mx;              /* the domain said it accepts no mail (RFC 7505): permanent */
    bool implicit;             /* no MX records: the domain's own A/AAAA (the implicit MX) */
    struct dns_mx_host *hosts; /* by preference; equal preferences in random order */
    size_t nhosts;
    char error[160];
};

/* Looks up the MX records of domain, then the addresses of each host (IPv6 and IPv4).
 * status: DNS_OK with hosts (some may have no addresses); DNS_NXDOMAIN; DNS_NODATA when
 * there is neither MX nor address; DNS_OK with null_mx set for a null MX; DNS_TEMPFAIL
 * when the MX lookup (or, for the implicit MX, the address lookups) failed for now. A
 * domain literal "[192.0.2.7]" / "[IPv6:2001:db8::1]" gives that address without a
 * query. Free with dns_mx_clear(). */
enum dns_status dns_resolve_mx(struct dns_resolver *r, const char *domain, struct dns_mx *mx_r);
/* The addresses of one host name (IPv6 then IPv4), for a smarthost: same statuses. */
enum dns_status dns_resolve_host(struct dns_resolver *r, const char *host, struct dns_mx *mx_r);
void dns_mx_clear(struct dns_mx *mx);

/* The servers asked, as text for messages: "127.0.0.1:5353, [::1]:53" (the system's
 * resolvers when none were given). Valid as long as the resolver. */
const char *dns_resolver_servers(const struct dns_resolver *r);
/* "OK", "NXDOMAIN", "NODATA", "TEMPFAIL", "BADNAME". */
const char *dns_status_name(enum dns_status status);
/* Whether name can be asked for: at most 253 bytes (one trailing dot allowed), labels of
 * 1..63 letters, digits, '-' or '_', and a last label that is not all digits (so an IPv4
 * address is not a name). */
bool dns_name_valid(const char *name);

/* For tests: parses a raw answer (header, question, answer section) to a question of
 * type qtype into ans_r: records of the known types with their TTLs (others skipped),
 * status from the RCODE (NOERROR: DNS_OK if a record of qtype is there, else
 * DNS_NODATA; NXDOMAIN; any other RCODE: DNS_TEMPFAIL with its name in error). -1 for a
 * malformed answer (truncated, bad lengths, compression loops): ans_r->status is
 * DNS_TEMPFAIL, error says why and no records are kept. ans_r is always set. */
int dns_parse_answer(const unsigned char *buf, size_t len, enum dns_type qtype,
                     struct dns_answer *ans_r);

#endif
