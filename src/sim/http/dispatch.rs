//! The action table of the simulator's HTTP front: a request's parameters
//! parsed into the model's typed request (names the model lacks are
//! `UnknownParameter`, a missing required one `MissingParameter`), the
//! engine call, and the answer serialised under the engine lock.

use crate::cloud::fields::shape_of;
use crate::cloud::model::{self, Action};
use crate::cloud::{sts, tag};
use crate::sim::Shared;
use crate::sim::engine::{ApiError, Ctx, Engine, api_err};
use crate::sim::sts::{Principal, caller_identity};
use serde_json::Value;

/// Maps a typed-parse failure to the API's parameter errors, naming the field.
fn param_error(e: serde_path_to_error::Error<serde_json::Error>) -> ApiError {
    let path = e.path().to_string();
    let msg = e.inner().to_string();
    let field = |marker: &str| {
        msg.split(marker)
            .nth(1)
            .and_then(|r| r.split('`').next())
            .map(|f| {
                if path == "." || path.is_empty() {
                    f.to_string()
                } else {
                    format!("{path}.{f}")
                }
            })
    };
    if let Some(f) = field("unknown field `") {
        api_err(
            "UnknownParameter",
            format!("The parameter `{f}` is not recognized."),
        )
    } else if let Some(f) = field("missing field `") {
        api_err(
            "MissingParameter",
            format!("The request is missing a required parameter `{f}`."),
        )
    } else {
        let shown = msg.split(" at line").next().unwrap_or(&msg);
        api_err(
            "InvalidParameter",
            format!("The parameter `{path}` is invalid: {shown}."),
        )
    }
}

/// The typed request. Names the model does not have, at any depth, are
/// `UnknownParameter`: the model has every member of the official schema
/// (`sim::conformance` checks it), so these are exactly the names the real
/// service refuses.
fn parse<T: serde::de::DeserializeOwned + schemars::JsonSchema + 'static>(
    params: Value,
) -> Result<T, ApiError> {
    if let Some(path) = shape_of::<T>().unknown_member(&params) {
        return Err(api_err(
            "UnknownParameter",
            format!("The parameter `{path}` is not recognized."),
        ));
    }
    serde_path_to_error::deserialize(params).map_err(param_error)
}

/// Runs one action against the engine; returns the response fields as a
/// serialised JSON object (serialised under the engine lock, straight from
/// the stored instances, without copies).
fn ser<T: serde::Serialize>(t: T) -> Vec<u8> {
    serde_json::to_vec(&t).expect("wire types serialise")
}

pub(super) fn dispatch(
    shared: &Shared,
    action: &str,
    ctx: &Ctx<'_>,
    params: Value,
) -> Result<Vec<u8>, ApiError> {
    let mut engine = shared.engine.lock().unwrap_or_else(|e| e.into_inner());
    engine.advance(ctx.now);
    let empty = || b"{}".to_vec();
    Ok(match action {
        model::RunInstances::NAME => ser(engine.run_instances(ctx, parse(params)?)?),
        model::DescribeInstances::NAME => ser(engine.describe_instances(ctx, parse(params)?)?),
        model::DescribeInstancesStatus::NAME => {
            ser(engine.describe_instances_status(ctx, parse(params)?)?)
        }
        model::StartInstances::NAME => {
            engine.start_instances(ctx, parse(params)?)?;
            empty()
        }
        model::StopInstances::NAME => {
            engine.stop_instances(ctx, parse(params)?)?;
            empty()
        }
        model::RebootInstances::NAME => {
            engine.reboot_instances(ctx, parse(params)?)?;
            empty()
        }
        model::TerminateInstances::NAME => {
            engine.terminate_instances(ctx, parse(params)?)?;
            empty()
        }
        model::ResetInstancesType::NAME => {
            engine.reset_instances_type(ctx, parse(params)?)?;
            empty()
        }
        model::ResetInstancesInternetMaxBandwidth::NAME => {
            engine.reset_instances_internet_max_bandwidth(ctx, parse(params)?)?;
            empty()
        }
        model::ModifyInstancesAttribute::NAME => {
            engine.modify_instances_attribute(ctx, parse(params)?)?;
            empty()
        }
        model::InquiryPriceRunInstances::NAME => {
            ser(engine.inquiry_price_run_instances(ctx, parse(params)?)?)
        }
        model::DescribeZones::NAME => {
            let _: model::DescribeZonesRequest = parse(params)?;
            ser(engine.describe_zones(ctx)?)
        }
        model::DescribeInstanceTypeConfigs::NAME => {
            ser(engine.describe_instance_type_configs(ctx, parse(params)?)?)
        }
        model::DescribeImages::NAME => ser(engine.describe_images(ctx, parse(params)?)?),
        _ => return dispatch_in_place(&mut engine, action, ctx, params),
    })
}

/// The in-place changes of issue 10 (and their price inquiries).
fn dispatch_in_place(
    engine: &mut Engine,
    action: &str,
    ctx: &Ctx<'_>,
    params: Value,
) -> Result<Vec<u8>, ApiError> {
    let empty = |r: Result<(), ApiError>| r.map(|()| b"{}".to_vec());
    match action {
        model::ResetInstance::NAME => empty(engine.reset_instance(ctx, parse(params)?)),
        model::ModifyInstancesProject::NAME => {
            empty(engine.modify_instances_project(ctx, parse(params)?))
        }
        model::ModifyInstancesChargeType::NAME => {
            empty(engine.modify_instances_charge_type(ctx, parse(params)?))
        }
        model::ModifyInstancesRenewFlag::NAME => {
            empty(engine.modify_instances_renew_flag(ctx, parse(params)?))
        }
        model::AssociateInstancesKeyPairs::NAME => {
            empty(engine.change_instances_key_pairs(ctx, parse(params)?, true))
        }
        model::DisassociateInstancesKeyPairs::NAME => {
            empty(engine.change_instances_key_pairs(ctx, parse(params)?, false))
        }
        model::ResetInstancesPassword::NAME => {
            empty(engine.reset_instances_password(ctx, parse(params)?))
        }
        model::ResizeInstanceDisks::NAME => {
            empty(engine.resize_instance_disks(ctx, parse(params)?))
        }
        model::DescribeInstancesModification::NAME => Ok(ser(
            engine.describe_instances_modification(ctx, parse(params)?)?
        )),
        model::ModifyInstancesVpcAttribute::NAME => {
            empty(engine.modify_instances_vpc_attribute(ctx, parse(params)?))
        }
        model::ModifyInstancesDisasterRecoverGroup::NAME => {
            empty(engine.modify_instances_disaster_recover_group(ctx, parse(params)?))
        }
        model::InquiryPriceResetInstancesType::NAME => Ok(ser(
            engine.inquiry_price_reset_instances_type(ctx, parse(params)?)?
        )),
        model::InquiryPriceResetInstancesInternetMaxBandwidth::NAME => {
            Ok(ser(engine
                .inquiry_price_reset_instances_internet_max_bandwidth(
                    ctx,
                    parse(params)?,
                )?))
        }
        other => Err(api_err(
            "InvalidAction",
            format!("The requested action `{other}` does not exist."),
        )),
    }
}

/// Runs one STS action; `who` is `None` for the unsigned one.
pub(super) fn dispatch_sts(
    shared: &Shared,
    action: &str,
    who: Option<&Principal>,
    params: Value,
) -> Result<Vec<u8>, ApiError> {
    let signed = || {
        who.ok_or_else(|| {
            api_err(
                "AuthFailure.InvalidAuthorization",
                "This action must be signed.",
            )
        })
    };
    let now = shared.now_unix();
    let mut state = shared.sts.lock().unwrap_or_else(|e| e.into_inner());
    Ok(match action {
        sts::AssumeRole::NAME => ser(state.assume_role(signed()?, parse(params)?, now)?),
        sts::AssumeRoleWithWebIdentity::NAME => {
            ser(state.assume_role_with_web_identity(parse(params)?, now)?)
        }
        sts::GetCallerIdentity::NAME => {
            let _: sts::GetCallerIdentityRequest = parse(params)?;
            ser(caller_identity(signed()?))
        }
        other => {
            return Err(api_err(
                "InvalidAction",
                format!("The requested action `{other}` does not exist."),
            ));
        }
    })
}

/// Runs one Tag service action against the engine's instances.
pub(super) fn dispatch_tag(
    shared: &Shared,
    action: &str,
    ctx: &Ctx<'_>,
    params: Value,
) -> Result<Vec<u8>, ApiError> {
    let mut engine = shared.engine.lock().unwrap_or_else(|e| e.into_inner());
    engine.advance(ctx.now);
    Ok(match action {
        tag::ModifyResourceTags::NAME => {
            engine.modify_resource_tags(ctx, parse(params)?)?;
            b"{}".to_vec()
        }
        tag::DescribeResourceTagsByResourceIds::NAME => {
            ser(engine.describe_resource_tags_by_resource_ids(ctx, parse(params)?)?)
        }
        other => {
            return Err(api_err(
                "InvalidAction",
                format!("The requested action `{other}` does not exist."),
            ));
        }
    })
}
