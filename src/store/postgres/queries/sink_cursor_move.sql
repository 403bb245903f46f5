UPDATE notification_cursors SET revision = $1 WHERE sink = $2 AND revision = $3
