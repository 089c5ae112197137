/* Integration: cimd with log_format = json writes nothing but JSON lines — through a start
 * that creates the data directory, logins, a message at debug level, and a clean stop —
 * and each line is an object with the documented members (core/log.h). */
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "client/cim.h"
#include "support/msg.h"
#include "support/server.h"
#include "support/test.h"

TEST_TIMEOUT(e2e_service_log_json_lines, 30)
{
    static const char *const members[] = {"time", "level", "thread", "event"};
    char path[512], line[4096];
    cim_SendRsp rsp = cim_SendRsp_init_zero;
    bool ready = false, stopped = false;
    int lines = 0;
    tsrv_t t;
    FILE *f;

    tsrv_start(&t, "--log_format", "json", "--log_level", "debug", NULL);
    cimc_t *a = tsrv_login(&t, "alice", "d1", NULL);
    cimc_t *b = tsrv_login(&t, "bob", "d1", NULL);
    ASSERT_OK(tmsg_send(a, "bob", "c1", cim_MsgType_TEXT, "hi", 2, false, &rsp));
    ASSERT_EQ(rsp.code, cim_Code_OK);
    cimc_close(a);
    cimc_close(b);
    ASSERT_EQ(tsrv_stop_keep(&t), 0);

    snprintf(path, sizeof(path), "%s", t.log);
    f = fopen(path, "r");
    ASSERT_NOT_NULL(f);
    while (fgets(line, sizeof(line), f) != NULL) {
        json_error_t e;
        json_t *o;

        ASSERT_NOT_NULL(strchr(line, '\n')); /* whole lines, none longer than a line */
        if ((o = json_loads(line, 0, &e)) == NULL) {
            tsrv_dump_log(&t);
            TEST_FAIL_("log line %d is not JSON (%s): %s", lines + 1, e.text, line);
        }
        ASSERT_TRUE(json_is_object(o));
        for (size_t i = 0; i < sizeof(members) / sizeof(members[0]); i++)
            if (!json_is_string(json_object_get(o, members[i])))
                TEST_FAIL_("log line %d has no string '%s': %s", lines + 1, members[i], line);
        ASSERT_TRUE(json_is_object(json_object_get(o, "fields")));
        const char *ev = json_string_value(json_object_get(o, "event"));
        ready |= strncmp(ev, "cimd ready: listening on 127.0.0.1:", 35) == 0;
        stopped |= strcmp(ev, "cimd stopped") == 0;
        json_decref(o);
        lines++;
    }
    fclose(f);
    ASSERT_TRUE(ready);
    ASSERT_TRUE(stopped);
    ASSERT_TRUE(lines >= 6); /* identity, ready, sessions, logins, stop... */
    (void)tsrv_stop(&t); /* stopped already: this removes the directory */
}
