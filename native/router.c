/* Placeholder until the router lands: no routes ever match. */
#include "internal.h"

int32_t pal_router_build(const uint8_t *spec, uint32_t len) { (void)spec; (void)len; return 0; }
void pal_router_free(int32_t router) { (void)router; }
int32_t pal_route_match(int32_t router, const uint8_t *buf, const uint8_t *ip, uint32_t ip_len, int32_t *out) {
  (void)router; (void)buf; (void)ip; (void)ip_len;
  out[OUT_ROUTE_COUNT] = 0;
  return 0;
}
