"""``vpsmon.v1``: agent <-> command side contract (``agent.proto``).

Import the generated modules directly::

    from proto.vpsmon.v1 import agent_pb2, agent_pb2_grpc
"""
