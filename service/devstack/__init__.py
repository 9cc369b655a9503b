"""The local stack for tests, the demo and CI: a real single-node Kafka broker and moto's AWS server.

Kafka runs from the `apache/kafka` image when a Docker engine answers, else as a local JVM
from jars that Maven resolves (pom.xml at the repo root) into a cache outside git. There is
no stand-in: without Docker and without java >= 17 + mvn, starting Kafka fails and says so.
"""
from service.devstack.broker import KafkaBroker, docker_available, server_properties, start_kafka
from service.devstack.jars import KAFKA_VERSION, cache_dir, fetch_kafka
from service.devstack.listeners import BrokerSecurity, Listener, ScramUser
from service.devstack.moto_server import MotoServer, start_moto

__all__ = [
    "KAFKA_VERSION", "BrokerSecurity", "KafkaBroker", "Listener", "MotoServer", "ScramUser", "cache_dir",
    "docker_available", "fetch_kafka", "server_properties", "start_kafka", "start_moto",
]
