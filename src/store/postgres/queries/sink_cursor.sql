SELECT revision FROM notification_cursors WHERE sink = $1
