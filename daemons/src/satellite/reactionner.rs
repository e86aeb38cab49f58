//! The reactionner: the poller's loop asking for notifications and event handlers instead of
//! checks (`get_checks` with `do_actions=true`, `do_checks=false`; semantics reference, 5.3).
//!
//! It shares everything else with the poller ([`super::poller::Worker`]): the runner, the
//! per-scheduler loops, the results going home to the scheduler that handed the action out
//! (`put_results`). Schedulers hand out per-contact notifications and event handlers
//! ([`crate::scheduler::notify`]), untagged ones to untagged reactionners, tagged ones
//! (`reactionner_tag` of the command) to reactionners with that tag.

use super::poller::{Mode, Worker};
use crate::protocol::Token;
use shinken_config::daemons::Role;
use std::sync::Arc;

/// A reactionner named `me`.
pub fn new(me: String, token: Token) -> Arc<Worker> {
    Worker::new(me, Role::Reactionner, Mode::Actions, token)
}
