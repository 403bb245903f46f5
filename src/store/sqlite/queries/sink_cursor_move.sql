UPDATE notification_cursors SET revision = ? WHERE sink = ? AND revision = ?
