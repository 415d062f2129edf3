/* placeholder until the libevent peer lands */
#include "peer.h"
const struct peer peer_libevent = {.name = "libevent"};
