package capture

import "errors"

// ErrPermission is returned (wrapped) when the process may not open packet
// sockets: capturing needs CAP_NET_RAW (run as root, or grant it with
// `setcap cap_net_raw+ep conntop`).
var ErrPermission = errors.New("capturing packets needs CAP_NET_RAW (run as root or `sudo setcap cap_net_raw+ep $(which conntop)`)")
