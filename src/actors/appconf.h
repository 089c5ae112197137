/**
 * appconf: an app's settings — the webhook URL, the events sent to it and whether message
 * bodies go with them (docs/WEBHOOKS.md).
 *
 * Design. kv stores an app's settings as opaque bytes after its secret
 * (kv_app_settings_get/put); this module gives them their meaning. The stored form is text,
 * one `key=value` line per setting that differs from its default, each ending in '\n'
 * (docs/STORAGE.md, apps): readable in mdb_dump, and a reader skips keys it does not know,
 * so a newer build can add settings without a schema change. `cimctl app set APP KEY=VALUE`
 * takes the same `key=value` form, checked by appconf_set before anything is written.
 *
 * Settings:
 *   webhook_url     http:// or https:// URL with a host, at most APPCONF_URL_MAX bytes of
 *                   printable ASCII; empty (the default): no webhook.
 *   webhook_events  comma-separated event names (appconf_event_name); default
 *                   "message.offline,message.to_bot"; empty: none.
 *   webhook_bodies  true|false (also yes|no|1|0); default false.
 *
 * Threading: pure functions on caller-owned structs; any thread. appconf_set parses URLs
 * with libcurl's URL API (curl_url), which needs no curl_global_init.
 */
#ifndef CIM_ACTORS_APPCONF_H
#define CIM_ACTORS_APPCONF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define APPCONF_URL_MAX 2048 /**< longest webhook_url, bytes */

/** The webhook events, as bits of appconf_t.webhook_events. */
enum {
    APPCONF_EV_MESSAGE_OFFLINE = 1 << 0, /* "message.offline" */
    APPCONF_EV_MESSAGE_TO_BOT = 1 << 1,  /* "message.to_bot" */
    APPCONF_EV_USER_ONLINE = 1 << 2,     /* "user.online" */
    APPCONF_EV_USER_OFFLINE = 1 << 3,    /* "user.offline" */
};
#define APPCONF_EV_ALL     0x0fu
#define APPCONF_EV_DEFAULT (APPCONF_EV_MESSAGE_OFFLINE | APPCONF_EV_MESSAGE_TO_BOT)
#define APPCONF_EV_MESSAGE (APPCONF_EV_MESSAGE_OFFLINE | APPCONF_EV_MESSAGE_TO_BOT)
#define APPCONF_EV_USER    (APPCONF_EV_USER_ONLINE | APPCONF_EV_USER_OFFLINE)

/** One app's settings. */
typedef struct appconf {
    char webhook_url[APPCONF_URL_MAX + 1]; /* "" = no webhook */
    uint32_t webhook_events;               /* APPCONF_EV_* bits */
    bool webhook_bodies;                   /* message events carry the body */
} appconf_t;

/** Fill @p c with the defaults (no webhook, events APPCONF_EV_DEFAULT, no bodies). */
void appconf_defaults(appconf_t *c);

/**
 * @return true when @p c sends anything: a URL and at least one event.
 */
bool appconf_has_webhook(const appconf_t *c);

/**
 * Apply one `key=value` setting (value may be empty) to @p c.
 * @param[out] err  on failure, one line naming the key and saying what is expected
 *                  ("unknown event 'x' in webhook_events (one of: ...)").
 * @return 0, RC_ENOTFOUND (unknown key; @p err names it and lists the keys), or
 *         RC_EINVAL (no '=', or a bad value). On failure @p c is unchanged.
 */
int appconf_set(appconf_t *c, const char *setting, char *err, size_t errlen);

/**
 * Decode stored settings (as kv_app_settings_get returns them) over the defaults. Keys
 * this build does not know, and lines it cannot read, are skipped (a newer build's).
 */
void appconf_decode(const uint8_t *val, size_t len, appconf_t *out);

/**
 * Encode the settings of @p c that differ from their defaults, in the stored form.
 * @param[out] buf  room for @p cap bytes (not NUL-terminated).
 * @return the length (0: every setting at its default), or RC_ETOOBIG when @p cap is short
 *         (KV_APP_SETTINGS_MAX always suffices).
 */
int appconf_encode(const appconf_t *c, uint8_t *buf, size_t cap);

/**
 * Write every setting of @p c, defaults too, as `key=value` words separated by @p sep
 * (e.g. "\n" for one per line, " " for one line), NUL-terminated, in the form appconf_set
 * takes. @return the length, or RC_ETOOBIG (@p cap short; 3 * APPCONF_URL_MAX suffices).
 */
int appconf_format(const appconf_t *c, const char *sep, char *buf, size_t cap);

/** @return the name of the single event bit @p ev ("message.offline"), or NULL. */
const char *appconf_event_name(uint32_t ev);

#endif
