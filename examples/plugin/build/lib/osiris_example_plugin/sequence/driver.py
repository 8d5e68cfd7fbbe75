"""`example.sequence`: a read component that needs nothing but Arrow."""

from __future__ import annotations

import pyarrow as pa
from pydantic import Field

from osiris_core.driver import MAIN_OUTPUT, Driver, DriverConfig, StepContext, StepInputs, StepOutputs


class SequenceConfig(DriverConfig):
    count: int = Field(ge=0)
    start: int = 0


class SequenceDriver(Driver[SequenceConfig]):
    config_model = SequenceConfig

    def run(self, *, step_id: str, config: SequenceConfig, inputs: StepInputs, ctx: StepContext) -> StepOutputs:
        return {MAIN_OUTPUT: pa.table({"n": pa.array(range(config.start, config.start + config.count), pa.int64())})}
