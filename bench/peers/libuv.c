/* placeholder until the libuv peer lands */
#include "peer.h"
const struct peer peer_libuv = {.name = "libuv"};
