-- Remote recipients waiting for SMTP are `smtp.deliver` jobs now (loft_core::mail::DeliveryJob):
-- the queued rows of the old outbound_queue move over, and the table, which differed between
-- the two backends and was never read, goes.
INSERT INTO jobs (kind, payload, owner_id, status, attempts, max_attempts, run_at, created_at)
SELECT 'smtp.deliver', json_build_object('message', m.id, 'recipient', q.recipient)::text, m.owner_id, 'queued', 0, 20,
       q.next_attempt_at, q.created_at
FROM outbound_queue q JOIN messages m ON m.seq = q.message_seq
WHERE q.status = 'queued'
ORDER BY q.id;

DROP TABLE outbound_queue;
