-- Failed-login counters are keyed by a hash of the name typed (`ops::throttle::Key`): what
-- is typed as a name is often a password. The counters kept under the name as typed go;
-- they last 15 minutes at most, so a lock in force ends early, once, at the upgrade.
DELETE FROM login_failures WHERE key LIKE 'user:%';
