/* Integration: the first-run traps of issue 10 in the cim CLI, against a real cimd.
 *
 *  - --version on cim and cimdump. */
#include <stdio.h>
#include <string.h>

#include "core/version.h"
#include "support/server.h"
#include "support/test.h"

/* ---- --version --------------------------------------------------------------------- */

TEST(e2e_cli_version)
{
    char out[256], want[128];

    /* no server, key or user needed */
    ASSERT_EQ(tsrv_run_tool(out, sizeof(out), "cim", "--version", NULL), 0);
    snprintf(want, sizeof(want), "cim %s\n", cim_version);
    ASSERT_STREQ(out, want);
    ASSERT_EQ(tsrv_run_tool(out, sizeof(out), "cimdump", "--version", NULL), 0);
    snprintf(want, sizeof(want), "cimdump %s\n", cim_version);
    ASSERT_STREQ(out, want);
    ASSERT_TRUE(strlen(cim_version) > 0);
}
