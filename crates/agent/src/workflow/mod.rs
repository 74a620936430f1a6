//! What workflow runs need beyond the RPCs: how a step's input template is rendered.
//! The runs themselves are `service/workflow_runs/`.

pub mod template;
