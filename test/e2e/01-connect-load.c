/* Integration: 1,000 concurrent handshakes and logins, spread over every worker. */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "client/cim.h"
#include "support/server.h"
#include "support/test.h"

#define THREADS 4
#define PER_THREAD 250

typedef struct loader {
    const tsrv_t *t;
    int index;
    cimc_t *conns[PER_THREAD];
    int failures;
} loader_t;

static void *load(void *arg)
{
    loader_t *l = arg;
    cimc_opts_t o = tsrv_opts(l->t);
    char user[32], tok[256];

    /* One user per thread, one device per connection: tokens are per user. */
    snprintf(user, sizeof(user), "load%d", l->index);
    tsrv_token(l->t, "", user, 3600, tok, sizeof(tok));
    for (int i = 0; i < PER_THREAD; i++) {
        cim_LoginReq req = cim_LoginReq_init_zero;
        cim_LoginRsp rsp = cim_LoginRsp_init_zero;
        snprintf(req.user, sizeof(req.user), "%s", user);
        snprintf(req.device_id, sizeof(req.device_id), "dev-%d", i);
        snprintf(req.token, sizeof(req.token), "%s", tok);
        if (cimc_connect(&o, &l->conns[i]) != 0 || cimc_login(l->conns[i], &req, &rsp) != 0 ||
            rsp.code != cim_Code_OK)
            l->failures++;
    }
    return NULL;
}

TEST_TIMEOUT(e2e_load_1000_concurrent_logins, 120)
{
    tsrv_t t;
    loader_t l[THREADS];
    pthread_t th[THREADS];
    char line[1024], tag[16];
    int per_worker[4] = {0};
    FILE *f;

    ASSERT_TRUE(tsrv_raise_nofile() > 2 * THREADS * PER_THREAD + 100);
    tsrv_start(&t, "--workers", "4", "--log_level", "debug", NULL);
    memset(l, 0, sizeof(l));
    for (int i = 0; i < THREADS; i++) {
        l[i].t = &t;
        l[i].index = i;
        ASSERT_OK(pthread_create(&th[i], NULL, load, &l[i]));
    }
    for (int i = 0; i < THREADS; i++) {
        ASSERT_OK(pthread_join(th[i], NULL));
        ASSERT_EQ(l[i].failures, 0);
    }
    /* all 1,000 are live at once: each answers a ping */
    for (int i = 0; i < THREADS; i++)
        for (int j = 0; j < PER_THREAD; j++)
            ASSERT_OK(cimc_ping(l[i].conns[j], NULL));
    /* and every worker served its share (the server logs each login with its loop tag) */
    ASSERT_NOT_NULL(f = fopen(t.log, "r"));
    while (fgets(line, sizeof(line), f) != NULL) {
        if (strstr(line, "logged in") == NULL)
            continue;
        for (int w = 0; w < 4; w++) {
            snprintf(tag, sizeof(tag), "[w%d]", w);
            if (strstr(line, tag) != NULL)
                per_worker[w]++;
        }
    }
    fclose(f);
    for (int w = 0; w < 4; w++)
        ASSERT_EQ(per_worker[w], THREADS * PER_THREAD / 4);
    for (int i = 0; i < THREADS; i++)
        for (int j = 0; j < PER_THREAD; j++)
            cimc_close(l[i].conns[j]);
    ASSERT_EQ(tsrv_stop(&t), 0);
}
