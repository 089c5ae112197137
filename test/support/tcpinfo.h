/**
 * Test support: what the kernel counted on a TCP socket (TCP_INFO), for tests that check
 * how a peer writes (one segment or many), not only what arrives. Its own file because
 * linux/tcp.h, which has the counters, cannot be included beside netinet/tcp.h (uv.h).
 */
#ifndef CIM_TEST_TCPINFO_H
#define CIM_TEST_TCPINFO_H

#include <stdint.h>

/* The data-carrying segments received so far on @p fd (tcpi_data_segs_in); aborts the
 * test when the socket cannot say. */
uint32_t ttcp_data_segs_in(int fd);

#endif
