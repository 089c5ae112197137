/* appconf: an app's settings, their text form and their checks (appconf.h). */
#include "actors/appconf.h"

#include <curl/curl.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "core/rc.h"

static const char *const EVENT_NAMES[] = {"message.offline", "message.to_bot", "user.online",
                                          "user.offline"};
#define NEVENTS    (sizeof(EVENT_NAMES) / sizeof(EVENT_NAMES[0]))
#define EVENT_LIST "message.offline, message.to_bot, user.online, user.offline"
#define SHOWN_MAX  80 /* bytes of a value shown in an error */

/* @p v as an error shows it: at most SHOWN_MAX bytes, anything but printable ASCII as '?',
 * so that the message stays one line of text. */
static const char *shown(const char *v, char out[SHOWN_MAX + 1])
{
    size_t i = 0;
    for (; v[i] != '\0' && i < SHOWN_MAX; i++)
        out[i] = (unsigned char)v[i] < ' ' || (unsigned char)v[i] >= 0x7f ? '?' : v[i];
    out[i] = '\0';
    return out;
}

#define fail(err, errlen, ...) rc_msg((err), (errlen), RC_EINVAL, __VA_ARGS__)

void appconf_defaults(appconf_t *c)
{
    memset(c, 0, sizeof(*c));
    c->webhook_events = APPCONF_EV_DEFAULT;
}

bool appconf_has_webhook(const appconf_t *c)
{
    return c->webhook_url[0] != '\0' && (c->webhook_events & APPCONF_EV_ALL) != 0;
}

const char *appconf_event_name(uint32_t ev)
{
    for (size_t i = 0; i < NEVENTS; i++)
        if (ev == 1u << i)
            return EVENT_NAMES[i];
    return NULL;
}

/* libcurl's parser decides what a URL is; this adds what cim needs of one: http or https,
 * a host, and no byte that would break the stored line form or a log line. The URL kept
 * is libcurl's own rendering of it (@p out), so what is stored is what will be requested. */
static int check_url(const char *v, char out[APPCONF_URL_MAX + 1], char *err, size_t errlen)
{
    CURLU *u = NULL;
    char *scheme = NULL, *host = NULL, *url = NULL, sv[SHOWN_MAX + 1];
    int rc = 0;

    if (strlen(v) > APPCONF_URL_MAX)
        return fail(err, errlen, "webhook_url is longer than %d bytes", APPCONF_URL_MAX);
    for (const char *p = v; *p != '\0'; p++)
        if ((unsigned char)*p <= ' ' || (unsigned char)*p >= 0x7f)
            return fail(err, errlen,
                        "bad webhook_url '%s': spaces, control characters and "
                        "non-ASCII bytes must be percent-encoded",
                        shown(v, sv));
    if ((u = curl_url()) == NULL)
        return fail(err, errlen, "cannot check webhook_url: out of memory");
    if (curl_url_set(u, CURLUPART_URL, v, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
        (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0) ||
        curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK || host[0] == '\0' ||
        curl_url_get(u, CURLUPART_URL, &url, 0) != CURLUE_OK)
        rc = fail(err, errlen,
                  "bad webhook_url '%s': expected an http:// or https:// URL with a host",
                  shown(v, sv));
    else if (strlen(url) > APPCONF_URL_MAX)
        rc = fail(err, errlen, "webhook_url is longer than %d bytes", APPCONF_URL_MAX);
    else
        memcpy(out, url, strlen(url) + 1);
    curl_free(url);
    curl_free(host);
    curl_free(scheme);
    curl_url_cleanup(u);
    return rc;
}

static int parse_events(const char *v, uint32_t *out, char *err, size_t errlen)
{
    uint32_t mask = 0;
    const char *p = v;
    char sv[SHOWN_MAX + 1], name[SHOWN_MAX + 1];

    while (*p != '\0') {
        size_t n, i;
        p += strspn(p, " ");
        n = strcspn(p, ",");
        while (n > 0 && p[n - 1] == ' ')
            n--;
        for (i = 0; i < NEVENTS; i++)
            if (strlen(EVENT_NAMES[i]) == n && strncmp(p, EVENT_NAMES[i], n) == 0)
                break;
        if (i == NEVENTS) {
            if (n == 0)
                return fail(err, errlen, "empty event name in webhook_events '%s'", shown(v, sv));
            snprintf(name, sizeof(name), "%.*s", (int)(n > SHOWN_MAX ? SHOWN_MAX : n), p);
            return fail(err, errlen,
                        "unknown event '%s' in webhook_events (one of: " EVENT_LIST ")",
                        shown(name, sv));
        }
        mask |= 1u << i;
        p += strcspn(p, ",");
        if (*p == ',' && *++p == '\0')
            return fail(err, errlen, "empty event name in webhook_events '%s'", shown(v, sv));
    }
    *out = mask;
    return 0;
}

static int parse_bool(const char *v, bool *out)
{
    static const char *const yes[] = {"true", "yes", "1"}, *const no[] = {"false", "no", "0"};
    for (size_t i = 0; i < 3; i++) {
        if (strcasecmp(v, yes[i]) == 0 || strcasecmp(v, no[i]) == 0) {
            *out = strcasecmp(v, yes[i]) == 0;
            return 0;
        }
    }
    return RC_EINVAL;
}

int appconf_set(appconf_t *c, const char *setting, char *err, size_t errlen)
{
    const char *eq = strchr(setting, '=');
    const char *v;
    size_t klen;
    uint32_t ev = 0;
    char sv[SHOWN_MAX + 1], key[SHOWN_MAX + 1];
    bool b;
    int rc;

    if (eq == NULL)
        return fail(err, errlen, "expected KEY=VALUE, got '%s'", shown(setting, sv));
    klen = (size_t)(eq - setting);
    v = eq + 1;
#define IS(k) (klen == sizeof(k) - 1 && strncmp(setting, k, klen) == 0)
    if (IS("webhook_url")) {
        char url[APPCONF_URL_MAX + 1] = "";
        if (v[0] != '\0' && (rc = check_url(v, url, err, errlen)) < 0)
            return rc;
        memcpy(c->webhook_url, url, strlen(url) + 1);
        return 0;
    }
    if (IS("webhook_events")) {
        if ((rc = parse_events(v, &ev, err, errlen)) < 0)
            return rc;
        c->webhook_events = ev;
        return 0;
    }
    if (IS("webhook_bodies")) {
        if (parse_bool(v, &b) < 0)
            return fail(err, errlen, "bad value '%s' for webhook_bodies: expected true or false",
                        shown(v, sv));
        c->webhook_bodies = b;
        return 0;
    }
#undef IS
    snprintf(key, sizeof(key), "%.*s", (int)(klen > SHOWN_MAX ? SHOWN_MAX : klen), setting);
    (void)fail(err, errlen,
               "unknown setting '%s' (one of: webhook_url, webhook_events, webhook_bodies)",
               shown(key, sv));
    return RC_ENOTFOUND;
}

void appconf_decode(const uint8_t *val, size_t len, appconf_t *out)
{
    char line[APPCONF_URL_MAX + 64];
    size_t i = 0;

    appconf_defaults(out);
    while (i < len) {
        const uint8_t *nl = memchr(val + i, '\n', len - i);
        size_t n = nl != NULL ? (size_t)(nl - (val + i)) : len - i;
        if (n < sizeof(line)) {
            memcpy(line, val + i, n);
            line[n] = '\0';
            (void)appconf_set(out, line, NULL, 0); /* unknown or unreadable: skipped */
        }
        i += n + 1;
    }
}

/* The settings of @p c as (key, value, at its default) triples; @p events is the room for
 * the events' text. */
typedef struct item {
    const char *key, *value;
    bool is_default;
} item_t;
#define NITEMS 3

static void items_of(const appconf_t *c, char events[128], item_t it[NITEMS])
{
    size_t off = 0;
    events[0] = '\0';
    for (size_t i = 0; i < NEVENTS; i++)
        if (c->webhook_events & (1u << i))
            off +=
                (size_t)snprintf(events + off, 128 - off, "%s%s", off ? "," : "", EVENT_NAMES[i]);
    it[0] = (item_t){"webhook_url", c->webhook_url, c->webhook_url[0] == '\0'};
    it[1] = (item_t){"webhook_events", events, c->webhook_events == APPCONF_EV_DEFAULT};
    it[2] = (item_t){"webhook_bodies", c->webhook_bodies ? "true" : "false", !c->webhook_bodies};
}

int appconf_encode(const appconf_t *c, uint8_t *buf, size_t cap)
{
    char events[128];
    item_t it[NITEMS];
    size_t off = 0;

    items_of(c, events, it);
    for (size_t i = 0; i < NITEMS; i++) {
        size_t k = strlen(it[i].key), v = strlen(it[i].value);
        if (it[i].is_default)
            continue;
        if (off + k + v + 2 > cap)
            return RC_ETOOBIG;
        memcpy(buf + off, it[i].key, k);
        buf[off + k] = '=';
        memcpy(buf + off + k + 1, it[i].value, v);
        buf[off + k + 1 + v] = '\n';
        off += k + v + 2;
    }
    return (int)off;
}

int appconf_format(const appconf_t *c, const char *sep, char *buf, size_t cap)
{
    char events[128];
    item_t it[NITEMS];
    size_t off = 0;

    items_of(c, events, it);
    for (size_t i = 0; i < NITEMS; i++) {
        int n = snprintf(buf + off, cap - off, "%s%s=%s", i ? sep : "", it[i].key, it[i].value);
        if (n < 0 || (size_t)n >= cap - off)
            return RC_ETOOBIG;
        off += (size_t)n;
    }
    return (int)off;
}
